"""PEFT adapter folders: a PEFT-saved LoRA/DoRA folder loads into mma's adapters, and mma's save
to a folder that PEFT loads onto the transformers model of the same weights, with equal logits."""
import json

import pytest
import torch

from mma.adapters import DoRA, LoRA
from mma.adapters.peft_format import load_peft_lora, read_peft_lora_config, save_peft_lora

from test_peft_parity import VOCAB, _diff, _hf, _mma, _randomise, folders  # noqa: F401

peft = pytest.importorskip('peft')


@pytest.mark.parametrize('dora', [False, True])
def test_peft_folder_loads_into_mma(folders, tmp_path, dora):  # noqa: F811
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(0))
    pm = peft.get_peft_model(_hf(folders['qwen2']), peft.LoraConfig(
        r=4, lora_alpha=16, target_modules=['q_proj', 'k_proj', 'v_proj', 'up_proj'],
        use_dora=dora)).eval()
    _randomise(pm)
    pm.save_pretrained(tmp_path)
    llm = load_peft_lora(_mma(folders['qwen2']), str(tmp_path))
    slots = [s for s in llm.adapter_slots('all') if s.adapter is not None]
    assert len(slots) == 4 * 2
    assert all(type(s.adapter) is (DoRA if dora else LoRA) for s in slots)
    with torch.no_grad():
        assert _diff(llm.logits(ids), pm(ids).logits) <= 1e-5


@pytest.mark.parametrize('dora', [False, True])
def test_mma_lora_saves_a_folder_peft_loads(folders, tmp_path, dora):  # noqa: F811
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))
    llm = _mma(folders['llama'])
    placement = 'linear:q,k,o,gate,down'
    g = torch.Generator().manual_seed(2)
    for s in llm.adapter_slots(placement):
        a = (DoRA if dora else LoRA)(**s.sizes, rank=2, alpha=3.0, rslora=True)
        s.insert(a)
        with torch.no_grad():
            for p in a.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    with torch.no_grad():
        ours = llm.logits(ids)
    save_peft_lora(llm, str(tmp_path), placement)
    cfg = json.loads((tmp_path / 'adapter_config.json').read_text())
    assert (cfg['r'], cfg['use_rslora'], cfg['use_dora']) == (2, True, dora)
    pm = peft.PeftModel.from_pretrained(_hf(folders['llama']), str(tmp_path)).eval()
    with torch.no_grad():
        assert _diff(ours, _hf(folders['llama'])(ids).logits) > 1e-2
        assert _diff(pm(ids).logits, ours) <= 1e-5
    # and back: the folder loads into a fresh mma model with the same logits
    again = load_peft_lora(_mma(folders['llama']), str(tmp_path))
    with torch.no_grad():
        assert _diff(again.logits(ids), ours) <= 1e-5


def test_unsupported_config_is_named(tmp_path):
    (tmp_path / 'adapter_config.json').write_text(json.dumps(dict(
        peft_type='LORA', r=4, lora_alpha=8, target_modules=['q_proj', 'c_attn'])))
    with pytest.raises(ValueError, match='c_attn'):
        read_peft_lora_config(str(tmp_path))
    (tmp_path / 'adapter_config.json').write_text(json.dumps(dict(
        peft_type='LORA', r=4, lora_alpha=8, target_modules=['q_proj'], rank_pattern={'q': 2})))
    with pytest.raises(ValueError, match='rank_pattern'):
        read_peft_lora_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='adapter_config.json'):
        read_peft_lora_config(str(tmp_path / 'nothing'))
