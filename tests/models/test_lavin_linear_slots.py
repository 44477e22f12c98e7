"""LaVIN with adapters in linear slots (DoRA in the LLM, LoRA around the ViT's MLP) and a prefix:
the adapter checkpoint holds exactly the trainable tensors and reloads to the same logits, and a
merged state dict reloads into a fresh model's merged structure."""
import pytest
import torch

import mma
from mma.models.adapter_checkpoint import load_adapter_checkpoint
from mma.models.merge import load_merged_state_dict, merge_lavin
from mma.toy import tiny_lavin_cfg

from conftest import randomize_adapters, tiny_lavin_inputs  # noqa: E402

LLM = {'dora': (dict(type='DoRA', rank=4, alpha=8), 'linear:q,k,v,o,gate,up,down'),
       'prefix': (dict(type='LLaMAAdapterPrefix', length=3), 'prefix:1')}


def _cfg(kind):
    cfg = tiny_lavin_cfg(vocab_size=300)
    adapter, placement = LLM[kind]
    cfg.update(llm_adapter=adapter, llm_adapter_placement=placement,
               vit_adapter=dict(type='LoRA', rank=2), vit_adapter_placement='linear:up,down')
    return cfg


def _logits(model, modality='image'):
    with torch.no_grad():
        return model(tiny_lavin_inputs(modality), mode='tensor')


@pytest.mark.parametrize('kind', list(LLM))
def test_adapter_checkpoint_and_merged_state_dict_round_trip(kind):
    torch.manual_seed(0)
    model = mma.build_model(_cfg(kind)).eval()
    zero = _logits(model)  # DoRA takes its magnitude from the frozen weights here
    randomize_adapters(model, seed=2)
    ref = _logits(model)
    assert (ref - zero).abs().max() > 1e-3
    sd = model.trainable_state_dict()
    assert set(sd) >= {k for k, p in model.named_parameters() if p.requires_grad}
    assert all('.adapter' in k or k.startswith(('projector.', 'modality_embedding.')) for k in sd)
    torch.manual_seed(0)
    fresh = mma.build_model(_cfg(kind)).eval()
    load_adapter_checkpoint(fresh, sd)
    assert torch.equal(_logits(fresh), ref)
    merged = merge_lavin(model, 'image')
    assert (_logits(merged) - ref).abs().max() <= 1e-5
    torch.manual_seed(0)
    rebuilt = load_merged_state_dict(mma.build_model(_cfg(kind)).eval(), merged.state_dict())
    assert (_logits(rebuilt) - ref).abs().max() <= 1e-5
    left = [s for s in rebuilt.llm.adapter_slots('all') if s.adapter is not None]
    assert len(left) == (1 if kind == 'prefix' else 0)  # the prefix does not fold
