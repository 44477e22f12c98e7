"""LLaMA-2, LLaMA-3.1 (llama3 RoPE scaling, tied embeddings), Mistral, Qwen2.5 (qkv bias, tied) and
Phi-3 (fused qkv_proj / gate_up_proj, a sliding window): transformers' own models saved in the HF
layout load into mma with no size given and give the same logits; the Meta layout of LLaMA-2/3
too; cached decoding and merged adapters hold for each."""
import json
import os

import pytest
import torch

import mma
from mma.llms import LLaMA, save_meta_checkpoint
from mma.llms.checkpoints import meta_params
from mma.models.merge import merge_lavin
from mma.toy import TINY_VISION_CFG

transformers = pytest.importorskip('transformers')
from conftest import perturb_norms_and_biases  # noqa: E402
from test_llama_checkpoints import _write_sharded_bin  # noqa: E402

VOCAB = 300
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
              max_position_embeddings=256)
LLAMA3_ROPE = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=64, rope_theta=500000.0)
FAMILIES = {
    'llama2': ('LlamaConfig', 'LlamaForCausalLM', dict(rope_theta=20000.0)),
    'llama3.1': ('LlamaConfig', 'LlamaForCausalLM',
                 dict(rope_scaling=LLAMA3_ROPE, tie_word_embeddings=True)),
    'mistral': ('MistralConfig', 'MistralForCausalLM', dict(rope_theta=1e6, sliding_window=None)),
    'qwen2.5': ('Qwen2Config', 'Qwen2ForCausalLM', dict(rope_theta=1e6, tie_word_embeddings=True)),
    # a window longer than the test sequences (as Phi-3-mini-4k's 2047 is than LaVIN's 512)
    'phi3': ('Phi3Config', 'Phi3ForCausalLM',
             dict(sliding_window=48, pad_token_id=0, bos_token_id=1, eos_token_id=2)),
}


def _hf(family: str):
    cfg_cls, model_cls, extra = FAMILIES[family]
    cfg = getattr(transformers, cfg_cls)(**COMMON, **extra)
    torch.manual_seed(1)
    return perturb_norms_and_biases(getattr(transformers, model_cls)(cfg).eval())


def _mma(folder: str) -> LLaMA:
    with torch.device('meta'):
        model = LLaMA(checkpoint=folder)  # no size given: all from the folder
    model.load_pretrained()
    return model.eval()


def _max_diff(model: LLaMA, hf, ids) -> float:
    with torch.no_grad():
        return (model.logits(ids) - hf(ids).logits).abs().max().item()


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    out = {}
    for family in FAMILIES:
        hf = _hf(family)
        path = tmp_path_factory.mktemp(family.replace('.', '_'))
        hf.save_pretrained(path)
        out[family] = (hf, str(path))
    return out


@pytest.mark.parametrize('family', list(FAMILIES))
def test_hf_layout_logits_equal_transformers(folders, family, tmp_path):
    hf, path = folders[family]
    ids = torch.randint(0, VOCAB, (2, 40))  # past original_max_position_embeddings / 2
    model = _mma(path)
    a = model.args
    assert (a.qkv_bias, a.tie_embeddings) == (family == 'qwen2.5', family in ('llama3.1',
                                                                                'qwen2.5'))
    assert (a.rope_scaling is not None) == (family == 'llama3.1')
    assert a.max_seq_len == (48 if family == 'phi3' else 256)  # the window caps the positions
    assert _max_diff(model, hf, ids) <= 1e-5
    # sharded .bin shards with an index, and a config.json in transformers 4's form
    # (top-level rope_theta / rope_scaling instead of rope_parameters)
    _write_sharded_bin(hf, str(tmp_path))
    with open(tmp_path / 'config.json') as f:
        cfg = json.load(f)
    rope = cfg.pop('rope_parameters')
    cfg['rope_theta'] = rope.pop('rope_theta')
    if rope.get('rope_type') != 'default':
        cfg['rope_scaling'] = rope
    (tmp_path / 'config.json').write_text(json.dumps(cfg))
    assert _max_diff(_mma(str(tmp_path)), hf, ids) <= 1e-5


def test_the_switches_matter(folders):
    """Not vacuous: without the family's switch the logits differ."""
    ids = torch.randint(0, VOCAB, (1, 40))
    for family, field in (('llama3.1', 'rope_scaling'), ('qwen2.5', 'qkv_bias')):
        hf, path = folders[family]
        model = _mma(path)
        if field == 'rope_scaling':
            model.args.rope_scaling = None
        else:
            for blk in model.layers:
                for lin in (blk.attention.wq, blk.attention.wk, blk.attention.wv):
                    lin.bias = None
        assert _max_diff(model, hf, ids) > 1e-3, family


@pytest.mark.parametrize('family', ['llama2', 'llama3.1'])
def test_meta_layout_gives_the_same_logits(folders, family, tmp_path):
    hf, path = folders[family]
    model = _mma(path)
    params = meta_params(model.args)
    params['vocab_size'] = -1
    if family == 'llama3.1':  # Meta's params.json: a flag; the numbers are fixed in Meta's code
        params['use_scaled_rope'] = True
    save_meta_checkpoint(model.base_state_dict(), str(tmp_path), params)
    meta = _mma(str(tmp_path))
    ids = torch.randint(0, VOCAB, (2, 24))
    if family == 'llama3.1':  # Meta's fixed original length is 8192, the tiny config says 64
        assert meta.args.rope_scaling['original_max_position_embeddings'] == 8192
        meta.args.rope_scaling = dict(model.args.rope_scaling)
    assert _max_diff(meta, hf, ids) <= 1e-5


def _lavin(path: str):
    cfg = dict(type='LaVIN', llm=dict(type='LLaMA', checkpoint=path),
               vision=dict(type='CLIPViT', model_name=None, vision_cfg=TINY_VISION_CFG,
                           quick_gelu=True, feature_every=1),
               llm_adapter=dict(type='RoutedRepAdapter', dropout=0.0),
               vit_adapter=dict(type='RepAdapter', dropout=0.0),
               projector=dict(type='LaVINProjector', hidden=16))
    torch.manual_seed(0)
    model = mma.build_model(cfg)
    model.init_weights()
    with torch.no_grad():  # trained-looking adapters
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)
    return model.eval()


@pytest.mark.parametrize('family', list(FAMILIES))
def test_cached_decoding_and_merged_adapters(folders, family):
    model = _lavin(folders[family][1])
    ids = torch.randint(3, VOCAB, (2, 9))
    images = torch.randn(1, 3, 32, 32)
    inputs = dict(input_ids=ids, has_image=torch.tensor([True, False]),
                  visual_pos=torch.tensor([2, 0]), images=images,
                  lengths=torch.tensor([9, 9]))
    out = model.generate(inputs, max_new_tokens=6, stop_at_eos=False)
    # the reference: argmax of a full forward over the growing sequence, step by step
    seq = ids.clone()
    for step in range(6):
        step_inputs = dict(inputs, input_ids=seq, lengths=torch.full((2, ), seq.shape[1]))
        logits = model(step_inputs, mode='tensor')  # (B, T, V); the text row ends k earlier
        last = model.prompt_lengths(step_inputs) - 1
        nxt = logits[torch.arange(2), last].argmax(-1)
        assert nxt.tolist() == [t[step] for t in out.tokens], (family, step)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    # merged adapters equal unmerged, per modality
    for modality, row in (('image', 0), ('text', 1)):
        merged = merge_lavin(model, modality)
        assert not any(s.adapter is not None for s in merged.llm.adapter_slots('attn'))
        a = model(inputs, mode='tensor')[row]
        b = merged(inputs, mode='tensor')[row]
        assert (a - b).abs().max() <= 1e-4 * a.abs().max(), (family, modality)
