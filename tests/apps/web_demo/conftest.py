"""A tiny trained demo run (the layout tools/demo.py writes) and the answers tools/test.py gives
for its test questions, with and without their images; shared by the web demo tests."""
import importlib.util
import json
import os
import shutil
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
#: A few seconds of pretraining and one epoch of adapter training: the tests compare the web
#: demo's answers with tools/test.py's for the same model, so the model need not be good.
TINY = dict(n_train=32, n_val=4, n_test=8, vit_steps=3, llm_steps=20)


def _tools_test(argv: list) -> None:
    """``tools/test.py ARGV`` in this process."""
    spec = importlib.util.spec_from_file_location('mma_tools_test',
                                                  os.path.join(REPO, 'tools', 'test.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    old = sys.argv
    sys.argv = ['tools/test.py'] + argv
    try:
        mod.main()
    finally:
        sys.argv = old


def _predictions(path: str) -> dict:
    with open(path) as f:
        return {p['qid']: p['pred_text'] for p in json.load(f)['predictions']}


@pytest.fixture(scope='session')
def demo_dir(tmp_path_factory) -> str:
    """A trained tiny demo: the work dir of a tools/demo.py run.

    ``MMA_WEB_DEMO_RUN``: a tools/demo.py work dir to use instead (trained there first if it
    holds no run); docs/images/web_demo.png shows the quick demo model this way.
    """
    import torch
    from mmengine.config import Config

    import mma.apps.demo.run as run
    torch.set_num_threads(1)
    work_dir = os.environ.get('MMA_WEB_DEMO_RUN') or str(tmp_path_factory.mktemp('demo'))
    if not os.path.isfile(os.path.join(work_dir, 'lavin', 'last_checkpoint')):
        cfg = Config.fromfile(run.DEFAULT_CONFIG)
        run.set_asset_paths(cfg, os.path.join(work_dir, 'assets'))
        run.SETTINGS['web-demo-test'] = TINY
        try:
            run.prepare_assets(cfg, 'web-demo-test', log=lambda s: None)
        finally:
            run.SETTINGS.pop('web-demo-test')
        run.train_and_test(cfg, os.path.join(work_dir, 'lavin'), {
            'train_cfg.max_epochs': 1, 'param_scheduler': [],
            'default_hooks.logger.interval': 100})
    return work_dir


@pytest.fixture(scope='session')
def demo_run(demo_dir, tmp_path_factory):
    """``dict(work_dir, data_root, problems, test_qids, config, checkpoint, answers,
    text_only_answers)``: the trained tiny demo and tools/test.py's answer per test question
    (``text_only_answers``: image questions asked with their image removed)."""
    import mma.apps.demo.run as run
    root = tmp_path_factory.mktemp('web_demo')
    work_dir = demo_dir
    config, checkpoint = run.trained_demo(work_dir)
    config_file = str(root / 'demo_config.py')
    config.dump(config_file)
    data_root = config.data_root
    with open(os.path.join(data_root, 'problems.json')) as f:
        problems = json.load(f)
    with open(os.path.join(data_root, 'pid_splits.json')) as f:
        test_qids = json.load(f)['test']
    # the same questions without their images: a copy of the JSON files
    text_root = root / 'sqa_text_only'
    text_root.mkdir()
    shutil.copy(os.path.join(data_root, 'pid_splits.json'), text_root)
    shutil.copy(os.path.join(data_root, 'captions.json'), text_root)
    (text_root / 'problems.json').write_text(json.dumps(
        {q: dict(p, image=None) for q, p in problems.items()}))
    out, out_text = str(root / 'preds.json'), str(root / 'preds_text_only.json')
    _tools_test([config_file, checkpoint, '--work-dir', str(root / 'test'), '--out', out])
    _tools_test([config_file, checkpoint, '--work-dir', str(root / 'test_text'), '--out',
                 out_text, '--cfg-options', f'test_dataloader.dataset.data_root={text_root}'])
    return dict(work_dir=work_dir, data_root=data_root, problems=problems, test_qids=test_qids,
                config=config_file, checkpoint=checkpoint, answers=_predictions(out),
                text_only_answers=_predictions(out_text))


def image_path(run: dict, qid: str):
    """The image file of test question ``qid`` (None for a text question)."""
    if not run['problems'][qid]['image']:
        return None
    return os.path.join(run['data_root'], 'images', 'test', qid, 'image.png')
