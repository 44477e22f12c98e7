"""mma's LoRA, rsLoRA, DoRA, IA³ and LLaMA-Adapter prefix equal PEFT's on transformers' models
built from the same tiny weights, with the same adapter tensors (mapped by mma.adapters.peft_format):
the same logits within 1e-5, unmerged and merged, for LLaMA (MHA) and Qwen2 / Mistral (GQA)."""
import pytest
import torch

from mma.adapters.peft_format import peft_to_mma
from mma.llms import LLaMA
from mma.models.merge import fold_adapters
from mma.registry import ADAPTERS

transformers = pytest.importorskip('transformers')
peft = pytest.importorskip('peft')
from conftest import perturb_norms_and_biases  # noqa: E402

VOCAB = 128
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, rms_norm_eps=1e-5, max_position_embeddings=128)
FAMILIES = {'llama': ('LlamaConfig', 'LlamaForCausalLM', dict(num_key_value_heads=4)),
            'qwen2': ('Qwen2Config', 'Qwen2ForCausalLM', dict(num_key_value_heads=2)),
            'mistral': ('MistralConfig', 'MistralForCausalLM',
                        dict(num_key_value_heads=2, sliding_window=None))}
ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
SHORT = {p: p.split('_')[0] for p in ALL}


def methods():
    return {
        'lora': (peft.LoraConfig(r=4, lora_alpha=8, target_modules=ALL),
                 dict(type='LoRA', rank=4, alpha=8)),
        'rslora': (peft.LoraConfig(r=4, lora_alpha=6, use_rslora=True,
                                   target_modules=['q_proj', 'k_proj', 'v_proj', 'down_proj']),
                   dict(type='LoRA', rank=4, alpha=6, rslora=True)),
        'dora': (peft.LoraConfig(r=4, lora_alpha=8, use_dora=True, target_modules=ALL),
                 dict(type='DoRA', rank=4, alpha=8)),
        'ia3': (peft.IA3Config(target_modules=['k_proj', 'v_proj', 'down_proj'],
                               feedforward_modules=['down_proj']), dict(type='IA3')),
    }


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    out = {}
    for family, (cfg_cls, model_cls, extra) in FAMILIES.items():
        cfg = getattr(transformers, cfg_cls)(**COMMON, **extra)
        torch.manual_seed(1)
        model = perturb_norms_and_biases(getattr(transformers, model_cls)(cfg).eval())
        path = tmp_path_factory.mktemp(family)
        model.save_pretrained(path)
        out[family] = str(path)
    return out


def _hf(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _mma(path) -> LLaMA:
    with torch.device('meta'):
        model = LLaMA(checkpoint=path)
    model.load_pretrained()
    return model.eval()


def _randomise(pm, seed=0):
    """Every adapter tensor of the PEFT model away from its (identity) init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if not p.requires_grad:
                continue
            noise = torch.randn(p.shape, generator=g)
            if 'magnitude' in n or 'ia3_l' in n:
                p.mul_(1 + 0.3 * noise)
            elif 'adaption_gate' in n:
                p.fill_(0.7)
            else:
                p.copy_(0.2 * noise)


def insert(llm: LLaMA, placement: str, cfg: dict) -> list:
    slots = llm.adapter_slots(placement)
    for s in slots:
        s.insert(ADAPTERS.build({'in_features': llm.dim, **s.sizes, **cfg}))
    return slots


def load_peft_tensors(llm: LLaMA, pm) -> None:
    sd = peft_to_mma(peft.get_peft_model_state_dict(pm), llm.args.n_heads, llm.args.n_kv_heads)
    for k in [k for k in llm.state_dict() if k.endswith('magnitude_set')]:
        sd[k] = torch.ones((), dtype=torch.bool)
    missing, unexpected = llm.load_state_dict(sd, strict=False)
    assert not unexpected
    assert not [k for k in missing if '.adapter_' in k]


def _diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize('family', ['llama', 'qwen2'])
@pytest.mark.parametrize('method', ['lora', 'rslora', 'dora', 'ia3'])
def test_linear_adapters_equal_peft_unmerged_and_merged(folders, family, method):
    peft_cfg, cfg = methods()[method]
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(3))
    hf = _hf(folders[family])
    with torch.no_grad():
        base = hf(ids).logits
    pm = peft.get_peft_model(hf, peft_cfg).eval()
    _randomise(pm)
    llm = _mma(folders[family])
    placement = 'linear:' + ','.join(SHORT[p] for p in peft_cfg.target_modules)
    slots = insert(llm, placement, cfg)
    load_peft_tensors(llm, pm)
    with torch.no_grad():
        ref = pm(ids).logits
        assert _diff(ref, base) > 1e-2  # the adapters matter
        assert _diff(llm.logits(ids), ref) <= 1e-5
        merged_ref = pm.merge_and_unload()(ids).logits
        fold_adapters(slots)
        assert all(s.adapter is None for s in llm.adapter_slots('all'))
        assert _diff(llm.logits(ids), merged_ref) <= 1e-5
        assert _diff(llm.logits(ids), ref) <= 1e-5


@pytest.mark.parametrize('family', ['llama', 'mistral'])
def test_llama_adapter_prefix_equals_peft_adaption_prompt(folders, family):
    """PEFT's AdaptionPrompt supports llama and mistral (not qwen2); its gate is a plain scalar."""
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(4))
    hf = _hf(folders[family])
    with torch.no_grad():
        base = hf(ids).logits
    pm = peft.get_peft_model(hf, peft.AdaptionPromptConfig(
        adapter_len=3, adapter_layers=1, task_type='CAUSAL_LM')).eval()
    _randomise(pm)
    llm = _mma(folders[family])
    slots = insert(llm, 'prefix:1', dict(type='LLaMAAdapterPrefix', length=3))
    assert [s.parent for s in slots] == [llm.layers[-1].attention]
    load_peft_tensors(llm, pm)
    with torch.no_grad():
        ref = pm(ids).logits
        assert _diff(ref, base) > 1e-2
        assert _diff(llm.logits(ids), ref) <= 1e-5
        fold_adapters(slots)  # the prefix declares no fold: it stays
        assert slots[0].adapter is not None
        assert _diff(llm.logits(ids), ref) <= 1e-5


def test_broken_scaling_or_norm_is_caught(folders, monkeypatch):
    """Not vacuous: LoRA scaled by alpha/r where rsLoRA needs alpha/sqrt(r), or DoRA with the
    column norm instead of the row norm, moves the logits well past the tolerance."""
    from mma.adapters import lora as lora_mod
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))
    for method in ('rslora', 'dora'):
        peft_cfg, cfg = methods()[method]
        pm = peft.get_peft_model(_hf(folders['llama']), peft_cfg).eval()
        _randomise(pm)
        with monkeypatch.context() as m:
            if method == 'rslora':
                m.setattr(lora_mod, 'lora_scaling', lambda r, alpha, rs=False: alpha / r)
            else:
                def col_norm(self, weight):
                    self._take_magnitude(weight)
                    v = weight + self.delta_weight().to(weight)
                    return self.magnitude / v.norm(dim=0).detach().mean()
                m.setattr(lora_mod.DoRA, '_norm_scale', col_norm)
            llm = _mma(folders['llama'])
            insert(llm, 'linear:' + ','.join(SHORT[p] for p in peft_cfg.target_modules), cfg)
            load_peft_tensors(llm, pm)
            with torch.no_grad():
                assert _diff(llm.logits(ids), pm(ids).logits) > 1e-3, method
