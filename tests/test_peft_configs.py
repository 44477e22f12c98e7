"""configs/ablations/peft (LaVIN-7B) and configs/ablations/tiny/peft_*: each builds (7B on the
meta device) with the trainable count computed by hand from the adapter formulas, and changes
only the LLM's adapters of its parent config."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

import mma

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = os.path.join(REPO, 'configs', 'ablations')
FILES = sorted(os.path.relpath(p, ABLATIONS) for p in
               glob.glob(os.path.join(ABLATIONS, 'peft', '*.py')) +
               glob.glob(os.path.join(ABLATIONS, 'tiny', 'peft_*.py')))

# ---- hand formulas ------------------------------------------------------------------------------
# 7B: d=4096, 32 layers, MHA (k/v width d), FFN hidden 11008. Tiny demo: d=128, 4 layers, FFN 352.
# Everything but the LLM's adapters is LaVIN's (routed ViT adapters, projector, modality
# embedding): 7B 24*20,490 + (1024*128+128 + 128*4096+4096) + 2*4096 = 1,159,536;
# tiny 2*1,290 + (64*32+32 + 32*128+128) + 2*128 = 9,140. MMA's LLM adapters: 7B 32*81,930,
# tiny 4*2,570 (tests/test_ablation_configs.py).
REST_7B, REST_TINY = 1_159_536, 9_140


def lora(r, d, layers, n_targets=2):
    """r (d + d) per square target (q, v), per layer."""
    return layers * n_targets * r * (d + d)


def dora(r, d, layers):
    return lora(r, d, layers) + layers * 2 * d  # + a magnitude per output row


def ia3(d, ffn, layers):
    return layers * (d + d + ffn)  # k, v outputs and the down projection's input


def prefix(length, d, top):
    return top * (length * d + 1)  # prompt and a scalar gate per adapted layer


def routed_lora(r, d, layers, experts=2):
    """shared A r*d, K experts d*r, router d*K + K, per target (q, v)."""
    return layers * 2 * (r * d + experts * d * r + d * experts + experts)


EXPECTED = {
    'peft/lavin_7b_sqa_lora-r8-qv.py': (lora(8, 4096, 32) + REST_7B, 5_353_840),
    'peft/lavin_7b_sqa_lora-r5-qv.py': (lora(5, 4096, 32) + REST_7B, 3_780_976),
    'peft/lavin_7b_sqa_dora-r8-qv.py': (dora(8, 4096, 32) + REST_7B, 5_615_984),
    'peft/lavin_7b_sqa_ia3.py': (ia3(4096, 11008, 32) + REST_7B, 1_773_936),
    'peft/lavin_7b_sqa_llama-adapter.py': (prefix(10, 4096, 30) + REST_7B, 2_388_366),
    'peft/lavin_7b_sqa_mma-lora-r8-qv.py': (routed_lora(8, 4096, 32) + REST_7B, 7_975_408),
    'tiny/peft_lora-r8-qv.py': (lora(8, 128, 4) + REST_TINY, 25_524),
    'tiny/peft_lora-r5-qv.py': (lora(5, 128, 4) + REST_TINY, 19_380),
    'tiny/peft_dora-r5-qv.py': (dora(5, 128, 4) + REST_TINY, 20_404),
    'tiny/peft_ia3.py': (ia3(128, 352, 4) + REST_TINY, 11_572),
    'tiny/peft_llama-adapter-len20.py': (prefix(20, 128, 4) + REST_TINY, 19_384),
    'tiny/peft_mma-lora-r3-qv.py': (routed_lora(3, 128, 4) + REST_TINY, 20_420),
}
ADAPTER = {'lora': 'LoRA', 'dora': 'DoRA', 'ia3': 'IA3', 'llama-adapter': 'LLaMAAdapterPrefix',
           'mma-lora': 'RoutedLoRA'}


def test_budget_matched_lora_is_the_nearest_rank():
    mma_7b = 3_781_296
    best = min(range(1, 33), key=lambda r: abs(lora(r, 4096, 32) + REST_7B - mma_7b))
    assert best == 5


def test_every_peft_file_has_an_expected_count():
    assert sorted(EXPECTED) == FILES


@pytest.mark.parametrize('name', FILES)
def test_peft_config_builds_with_hand_computed_count(name):
    cfg = Config.fromfile(os.path.join(ABLATIONS, name))
    if name.startswith('peft/'):
        with torch.device('meta'):
            model = mma.build_model(cfg)
        parent = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_7b_sqa.py'))
    else:
        parent = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_tiny_demo.py'))
        for c in (cfg, parent):
            c.merge_from_dict({'model.llm.checkpoint': None, 'model.vision.pretrained': None})
        model = mma.build_model(cfg)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    formula, literal = EXPECTED[name]
    assert n == formula == literal
    method = max((k for k in ADAPTER if f'_{k}' in name), key=len)
    placed = {type(s.adapter).__name__ for s in model.llm.adapter_slots(
        cfg.model.llm_adapter_placement)}
    assert placed == {ADAPTER[method]}
    assert not any(getattr(b, n) for b in model.llm.layers for n in ('adapter_attn', 'adapter_ffn'))
    for key in ('vision', 'vit_adapter', 'vit_adapter_placement', 'projector'):
        assert cfg.model[key] == parent.model[key], key
