"""mma/slots.py's linear and prefix slots in the LLaMA backbone: placements name their targets
(errors name the known ones), frozen weights keep their keys and load with adapters in, and an
empty-gated prefix or zero LoRA leaves the model unchanged."""
import pytest
import torch

from mma.adapters import LLaMAAdapterPrefix, LoRA
from mma.llms import LLaMA, save_meta_checkpoint
from mma.llms.checkpoints import meta_params


def _llm(**kw):
    torch.manual_seed(0)
    return LLaMA(preset='tiny-gqa', vocab_size=100, **kw).eval()


def test_placements_and_errors():
    llm = _llm()
    slots = llm.adapter_slots('linear:q,down')
    assert [(s.name, s.sizes['target'], s.sizes['in_features'], s.sizes['out_features'])
            for s in slots[:2]] == [('adapter_wq', 'q', 64, 64), ('adapter_w2', 'down', 176, 64)]
    assert len(llm.adapter_slots('linear:all')) == 2 * 7
    assert llm.adapter_slots('linear:k')[0].sizes['out_features'] == 32  # 2 KV heads of 16
    assert [s.parent for s in llm.adapter_slots('prefix:1')] == [llm.layers[1].attention]
    assert len(llm.adapter_slots('prefix')) == 2
    with pytest.raises(ValueError, match='gate, up, down'):
        llm.adapter_slots('linear:q,w9')
    with pytest.raises(ValueError, match='1 <= N <= 2'):
        llm.adapter_slots('prefix:3')
    with pytest.raises(ValueError, match="'linear:<targets>'"):
        llm.adapter_slots('lora')


def test_linear_adapter_in_a_hidden_state_placement_is_a_clear_error():
    import mma
    from mma.toy import tiny_lavin_cfg
    cfg = tiny_lavin_cfg(vit_adapters=False)
    cfg['llm_adapter'] = dict(type='LoRA', rank=2)  # placement 'attn': no layer around it
    with pytest.raises(ValueError, match="linear placement"):
        mma.build_model(cfg)


def test_frozen_keys_unchanged_and_weights_load_with_adapters_in(tmp_path):
    src = _llm()
    save_meta_checkpoint(src.base_state_dict(), str(tmp_path), meta_params(src.args))
    llm = _llm(checkpoint=str(tmp_path))
    base_keys = set(llm.state_dict())
    for s in llm.adapter_slots('linear:all'):
        s.insert(LoRA(**s.sizes, rank=2))
    for s in llm.adapter_slots('prefix:1'):
        s.insert(LLaMAAdapterPrefix(llm.dim, length=3))
    assert set(llm.base_state_dict()) == base_keys
    llm.load_pretrained()  # strict: adapter tensors are not checkpoint weights
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():  # zero B and a zero gate: the frozen model
        assert torch.allclose(llm.logits(ids), src.logits(ids), atol=1e-6)


def test_slot_prefixes_of_slots_owned_by_the_root():
    """A slot whose parent is the root module itself has no leading dot in its prefix, so
    base_state_dict drops the adapter's tensors and keeps the wrapped module's."""
    from torch import nn

    from mma.adapters import RepAdapter
    from mma.slots import AdapterSlot, base_state_dict, slot_prefixes

    root = nn.Module()
    root.norm = nn.LayerNorm(8)
    root.inner = nn.Module()
    root.inner.norm = nn.LayerNorm(8)
    slots = [AdapterSlot(root, 'norm', wraps=True), AdapterSlot(root.inner, 'norm', wraps=True)]
    assert slot_prefixes(root, slots) == ['norm.adapter.', 'inner.norm.adapter.']
    for slot in slots:
        slot.insert(RepAdapter(in_features=8, hidden_dim=2))
    assert set(base_state_dict(root, slots)) == {'norm.weight', 'norm.bias',
                                                 'inner.norm.weight', 'inner.norm.bias'}
