"""The demo with a Qwen2.5-style LLM (GQA, q/k/v biases, untied embeddings, rope_theta 1e6) and
an HF tokenizer.json: it must learn image questions far above the text-only preset, as the LaVIN
preset does. (The patch-MLP variant shares the quick demo's assets: tests/apps/demo/test_demo.py.)"""
import os

import pytest
from conftest import QUICK_EPOCHS

from mma.apps.demo.run import run_demo

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'configs',
                    'ablations', 'tiny')


@pytest.mark.slow
def test_qwen_demo_beats_text_only(tmp_path):
    # its own backbone and tokenizer, so its own assets and its own text-only preset
    logs = []
    out = run_demo(str(tmp_path), os.path.join(TINY, 'lavin_tiny_demo_qwen2.5.py'),
                   setting='quick', log=logs.append,
                   cfg_options={'train_cfg.max_epochs': QUICK_EPOCHS})
    chance, lavin, text_only = out['chance'], out['lavin'], out['text_only']
    assert not any(line.startswith('assets: cached') for line in logs), logs[:3]
    assert lavin['count'] == 96 and lavin['unparseable'] <= 5
    assert lavin['IMG'] >= text_only['IMG'] + 30, (lavin, text_only)
    assert lavin['TXT'] >= chance['TXT'] + 50, (lavin, chance)
    # the backbone really is the Qwen2.5-style one, from its own folder
    assert os.path.isfile(tmp_path / 'assets' / 'llama' / 'tokenizer.json')
    assert not os.path.exists(tmp_path / 'assets' / 'llama' / 'tokenizer.model')
