"""The embedded demo, shortened: MMA must learn far above chance on both kinds of question, and
the router preset must beat the text-only preset on image questions."""
import json
import os

from mma.apps.demo.run import chance_levels, prepare_assets, run_demo, set_asset_paths


def test_quick_demo_learns(tmp_path):
    logs = []
    out = run_demo(str(tmp_path), setting='quick', log=logs.append,
                   cfg_options={'train_cfg.max_epochs': 3})
    chance, lavin, text_only = out['chance'], out['lavin'], out['text_only']
    assert lavin['count'] == 96 and lavin['unparseable'] <= 5  # unparseable = scored wrong
    assert lavin['IMG'] >= chance['IMG'] + 35, (lavin, chance)
    assert lavin['TXT'] >= chance['TXT'] + 50, (lavin, chance)
    assert lavin['IMG'] >= text_only['IMG'] + 30, (lavin, text_only)
    # the metric table was printed and predictions were written
    assert any('unparseable' in line for line in logs)
    with open(tmp_path / 'lavin' / 'predictions.json') as f:
        assert len(json.load(f)['predictions']) == 96


def test_assets_are_cached(tmp_path):
    from mmengine.config import Config

    from mma.apps.demo.run import DEFAULT_CONFIG
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
