"""mmengine formats the config with yapf (seconds for a config with long paths) for the log, the
dumped file, the visualizer and every checkpoint's meta. MMARunner's config formats each content
once, and its text is mmengine's own."""
import glob
import os

import mmengine.config.config as mmengine_config
import torch
from _train_helpers import TINY_CFG, data_options, train_in_process
from mmengine.config import Config

from mma.engine.runner import FormattedOnceConfig
from mma.toy import make_tiny_scienceqa


def test_text_is_mmengines_and_follows_changes():
    cfg = Config.fromfile(TINY_CFG)
    once = FormattedOnceConfig.of(Config.fromfile(TINY_CFG))
    assert once.pretty_text == cfg.pretty_text
    once.model.llm_adapter.dim = 12345  # a changed config gets its own text
    cfg.model.llm_adapter.dim = 12345
    assert 'dim=12345' in once.pretty_text and once.pretty_text == cfg.pretty_text


def test_a_training_run_formats_its_config_once(tmp_path, monkeypatch):
    calls = []
    format_code = mmengine_config.FormatCode

    def counting(text, **kwargs):
        calls.append(text)
        return format_code(text, **kwargs)

    monkeypatch.setattr(mmengine_config, 'FormatCode', counting)
    sqa = make_tiny_scienceqa(str(tmp_path / 'sqa'))
    wd = tmp_path / 'work'
    train_in_process([TINY_CFG, '--work-dir', str(wd), '--cfg-options'] + data_options(sqa) +
                     ['train_cfg.max_epochs=3'])
    checkpoints = sorted(glob.glob(str(wd / 'epoch_*.pth')))
    assert [os.path.basename(c) for c in checkpoints][-1] == 'epoch_3.pth'
    metas = [torch.load(c, map_location='cpu', weights_only=True)['meta']['cfg']
             for c in checkpoints]
    dumped = Config.fromfile(str(wd / 'lavin_tiny_sqa.py'))
    # the log, the dump, the visualizer and three checkpoints: one formatting of one content
    assert len(calls) == 1, len(calls)
    assert all(m == metas[0] for m in metas) and 'max_epochs=3' in metas[0]
    assert dumped.train_cfg.max_epochs == 3
