"""The embedded demo, shortened, as ``python tools/demo.py`` runs it: MMA must learn far above
chance on both kinds of question, the router preset must beat the text-only preset on image
questions, the routers must have learnt to tell the modalities apart, the console must stay short,
and every file the demo writes must load with ``torch.load(weights_only=True)``. The patch-MLP
variant of the demo trains on the same (cached) assets, so it is here too: one session fixture,
one file, one worker when the suite runs in parallel (tests/conftest.py)."""
import glob
import json
import os
import shutil
import zipfile

import pytest
import torch

from mma.apps.demo.run import (DEFAULT_CONFIG, chance_levels, prepare_assets, run_demo,
                               set_asset_paths)

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'configs',
                    'ablations', 'tiny')


@pytest.mark.slow
def test_quick_demo_learns(quick_demo):
    tmp_path, lines = quick_demo['work_dir'], quick_demo['lines']
    chance, lavin, text_only = quick_demo['chance'], quick_demo['lavin'], quick_demo['text_only']
    assert lavin['count'] == 96 and lavin['unparseable'] <= 5  # unparseable = scored wrong
    assert lavin['IMG'] >= chance['IMG'] + 35, (lavin, chance)
    assert lavin['TXT'] >= chance['TXT'] + 50, (lavin, chance)
    assert lavin['IMG'] >= text_only['IMG'] + 30, (lavin, text_only)

    # the console: progress, the metric tables, where files went; under 60 lines (mmengine's
    # own console printed ~1,100: config dump, hook tables, one line per parameter) ...
    assert len(lines) < 60, f'{len(lines)} lines:\n' + '\n'.join(lines)
    assert sum(line.startswith('questions: ') for line in lines) == 2  # one table per preset
    assert any('Epoch(train)' in line for line in lines)  # progress
    assert any(line.startswith('files in ') for line in lines)
    assert not any('paramwise_options' in line or 'Config:' in line for line in lines)
    # ... and the full log in the work dir
    log_files = glob.glob(str(tmp_path / 'lavin' / '*' / '*.log'))
    assert len(log_files) == 1
    with open(log_files[0]) as f:
        full_log = f.read()
    assert 'paramwise_options' in full_log and 'Config:' in full_log
    with open(tmp_path / 'lavin' / 'predictions.json') as f:
        assert len(json.load(f)['predictions']) == 96

    # every torch file the demo wrote loads without unpickling arbitrary objects
    torch_files = [p for p in glob.glob(str(tmp_path / '**' / '*'), recursive=True)
                   if os.path.isfile(p) and zipfile.is_zipfile(p)]
    names = {os.path.relpath(p, tmp_path) for p in torch_files}
    last = f"epoch_{quick_demo['epochs']}.pth"
    assert {f'lavin/{last}', f'text_only/{last}', 'assets/vit.pt',
            'assets/llama/consolidated.00.pth'} <= names, names
    for p in torch_files:
        torch.load(p, map_location='cpu', weights_only=True)

    # the routers learnt the modality: image and text-only samples weight the experts
    # differently in every routed LLM adapter (a constant router gives equal rows)
    import mma
    from mma.apps.visualization import router_weights
    from mmengine.config import Config
    cfg = Config.fromfile(DEFAULT_CONFIG)
    set_asset_paths(cfg, str(tmp_path / 'assets'))
    model = mma.load_model(cfg, str(tmp_path / 'lavin' / last))
    weights = router_weights(model)
    assert len(weights) == cfg.llm_params['n_layers']
    gaps = {name: float((w[0] - w[1]).abs().max()) for name, w in weights.items()}
    assert min(gaps.values()) > ROUTER_GAP, gaps


@pytest.mark.slow
def test_patch_mlp_demo_beats_text_only(tmp_path, quick_demo):
    # patch tokens through LLaVA-1.5's MLP projector, on the demo's backbones: the quick demo's
    # assets (cached, not made again); its text-only preset (no ViT, hence no projector) is the
    # quick demo's text-only model, already trained
    shutil.copytree(quick_demo['work_dir'] / 'assets', tmp_path / 'assets')
    logs = []
    out = run_demo(str(tmp_path), os.path.join(TINY, 'lavin_tiny_demo_patch-mlp.py'),
                   setting='quick', log=logs.append, compare_text_only=False,
                   cfg_options={'train_cfg.max_epochs': quick_demo['epochs']})
    lavin, chance, text_only = out['lavin'], out['chance'], quick_demo['text_only']
    assert f'assets: cached in {tmp_path / "assets"}' in logs, logs[:3]
    assert lavin['count'] == 96 and lavin['unparseable'] <= 5
    assert lavin['IMG'] >= text_only['IMG'] + 30, (lavin, text_only)
    assert lavin['TXT'] >= chance['TXT'] + 50, (lavin, chance)


#: Bound on the image-vs-text difference of an expert weight in every routed LLM adapter after the
#: quick demo: measured 0.77, 0.79, 0.82, 0.78 (layers 0-3; e.g. layer 2 gives expert 0 weight
#: 0.98 to image and 0.16 to text-only samples); a constant router gives 0.
ROUTER_GAP = 0.5


def test_assets_are_cached(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(DEFAULT_CONFIG)
    set_asset_paths(cfg, str(tmp_path / 'assets'))
    import mma.apps.demo.run as run
    run.SETTINGS['tiny-test'] = dict(n_train=8, n_val=4, n_test=8, vit_steps=2, llm_steps=2)
    try:
        first = prepare_assets(cfg, 'tiny-test', log=lambda s: None)
        mtime = os.path.getmtime(cfg.vit_file)
        logs = []
        second = prepare_assets(cfg, 'tiny-test', log=logs.append)
    finally:
        run.SETTINGS.pop('tiny-test')
    assert second == first and logs == [f'assets: cached in {cfg.assets}']
    assert os.path.getmtime(cfg.vit_file) == mtime
    ch = chance_levels(cfg.data_root)
    # 8 test questions cycling colour(4), shape(3), text colour(4), city(4) options
    assert abs(ch['Avg'] - 100 * (2 * (1 / 4 + 1 / 3 + 1 / 4 + 1 / 4)) / 8) < 1e-9
