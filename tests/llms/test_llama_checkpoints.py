"""Loading LLaMA base weights from Meta folders (1 and 2 shards) and HF folders."""
import json
import os

import pytest
import torch

from mma.llms import LLaMA, build_llama_from_folder, read_llama_args, save_meta_checkpoint
from mma.llms.checkpoints import _ffn_args, hf_permute, hf_unpermute, meta_params
from mma.llms.args import LLaMAArgs
from mma.toy import train_tokenizer

VOCAB = 300
LINES = [f'the quick brown fox {i} jumps over the lazy dog number {i * 7} and sees {i % 13} birds'
         for i in range(300)]


@pytest.fixture(scope='module')
def tokenizer_path(tmp_path_factory):
    return train_tokenizer(LINES, str(tmp_path_factory.mktemp('tok') / 'tokenizer.model'), VOCAB)


def _tiny(**kw) -> LLaMA:
    torch.manual_seed(0)
    cfg = dict(preset='tiny', vocab_size=VOCAB)
    cfg.update(kw)
    model = LLaMA(**cfg).eval()
    with torch.no_grad():  # RMSNorm weights start at 1: make them distinct per shard test
        for n, p in model.named_parameters():
            if n.endswith('norm.weight'):
                p.uniform_(0.5, 1.5)
    return model


def _logits(model: LLaMA, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.output(model(model.tok_embeddings(ids)))


def _meta_folder(model: LLaMA, path, num_shards=1, dtype=None, rope_freqs=False) -> str:
    sd = {k: (v.to(dtype) if dtype else v) for k, v in model.state_dict().items()}
    if rope_freqs:
        sd['rope.freqs'] = torch.ones(model.args.head_dim // 2)
    params = meta_params(model.args)
    params['vocab_size'] = -1  # as in Meta's files: taken from the weights / tokenizer
    save_meta_checkpoint(sd, str(path), params, num_shards)
    return str(path)


def test_meta_two_shards_equal_one_shard(tmp_path, tokenizer_path):
    ref = _tiny(preset='tiny-gqa')
    one = _meta_folder(ref, tmp_path / 'one', 1)
    two = _meta_folder(ref, tmp_path / 'two', 2)
    assert len([f for f in os.listdir(two) if f.startswith('consolidated.')]) == 2
    shard = torch.load(os.path.join(two, 'consolidated.00.pth'), weights_only=True)
    assert shard['tok_embeddings.weight'].shape == (VOCAB, 32)  # split along dim 1
    assert shard['layers.0.attention.wo.weight'].shape == (64, 32)
    loaded = []
    for folder in (one, two):
        with torch.device('meta'):
            m = LLaMA(preset='tiny-gqa', vocab_size=VOCAB, checkpoint=folder)
        m.load_pretrained()
        assert not any(p.is_meta for p in m.parameters())
        loaded.append(m.eval())
    for (k, v), (k1, v1), (k2, v2) in zip(ref.state_dict().items(), loaded[0].state_dict().items(),
                                          loaded[1].state_dict().items()):
        assert k == k1 == k2
        assert torch.equal(v, v1) and torch.equal(v, v2), k
    ids = torch.randint(0, VOCAB, (2, 9))
    assert torch.equal(_logits(ref, ids), _logits(loaded[1], ids))
    # An allocated model is filled in place: parameter objects (held by optimizers) survive.
    allocated = LLaMA(preset='tiny-gqa', vocab_size=VOCAB)
    wq = allocated.layers[0].attention.wq.weight
    allocated.load_pretrained(two)
    assert allocated.layers[0].attention.wq.weight is wq
    assert torch.equal(wq, ref.layers[0].attention.wq.weight)


def test_meta_fp16_with_rope_freqs_and_tokenizer_one_level_up(tmp_path, tokenizer_path):
    ref = _tiny()
    folder = _meta_folder(ref, tmp_path / 'llama' / '7B', 2, torch.float16, rope_freqs=True)
    os.link(tokenizer_path, tmp_path / 'llama' / 'tokenizer.model')
    assert read_llama_args(folder)['vocab_size'] == VOCAB
    model = build_llama_from_folder(folder, dtype=torch.float32)
    assert model.args.dim == 64 and model.args.vocab_size == VOCAB
    assert model.output.weight.dtype == torch.float32
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v.half().float()), k
    # Requires-grad flags stay the model's (frozen weights are frozen by LaVIN, not the loader).
    assert model.output.weight.requires_grad


def test_tokenizer_vocab_mismatch_is_a_clear_error(tmp_path, tokenizer_path):
    ref = _tiny(vocab_size=320)
    folder = _meta_folder(ref, tmp_path / '7B')
    os.link(tokenizer_path, tmp_path / '7B' / 'tokenizer.model')
    with pytest.raises(ValueError, match=r'tokenizer .*tokenizer.model has 300 pieces but '
                       r'checkpoint .*7B has vocab_size 320'):
        build_llama_from_folder(folder)
    with torch.device('meta'):
        model = LLaMA(preset='tiny', vocab_size=320, checkpoint=folder)
    with pytest.raises(ValueError, match='has 300 pieces'):
        model.load_pretrained()


def test_model_vocab_and_shape_mismatch_errors(tmp_path):
    # (sizes that disagree with the folder's params.json fail at construction, see
    # test_llama_sizes.py; a folder loaded into a model built without it is checked here)
    folder = _meta_folder(_tiny(), tmp_path / 'w')
    with torch.device('meta'):
        wrong_vocab = LLaMA(preset='tiny', vocab_size=512)
        wrong_dim = LLaMA(preset='tiny', vocab_size=VOCAB, dim=32)
        wrong_depth = LLaMA(preset='tiny', vocab_size=VOCAB, n_layers=1)
    with pytest.raises(ValueError, match=r'tok_embeddings.weight has 300 vocabulary rows but the '
                       r'model has vocab_size 512'):
        wrong_vocab.load_pretrained(folder)
    with pytest.raises(ValueError, match=r'shape mismatch for .*checkpoint \(.*\) vs model'):
        wrong_dim.load_pretrained(folder)
    with pytest.raises(KeyError, match=r"layers.1.attention.wq.weight' has no place"):
        wrong_depth.load_pretrained(folder)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint folder not found: .*nowhere'):
        LLaMA(preset='tiny', checkpoint=str(tmp_path / 'nowhere')).load_pretrained()
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='not a LLaMA checkpoint folder'):
        LLaMA(preset='tiny').load_pretrained(str(tmp_path / 'empty'))
    (tmp_path / 'noshards').mkdir()
    (tmp_path / 'noshards' / 'params.json').write_text('{"dim": 64}')
    with pytest.raises(FileNotFoundError, match='no consolidated.NN.pth shards in .*noshards'):
        LLaMA(preset='tiny').load_pretrained(str(tmp_path / 'noshards'))
    (tmp_path / 'hf').mkdir()
    (tmp_path / 'hf' / 'config.json').write_text('{}')
    with pytest.raises(FileNotFoundError, match='no HF weights in .*hf'):
        LLaMA(preset='tiny').load_pretrained(str(tmp_path / 'hf'))


def test_missing_weight_in_checkpoint(tmp_path):
    sd = dict(_tiny().state_dict())
    del sd['layers.1.ffn_norm.weight']
    save_meta_checkpoint(sd, str(tmp_path), meta_params(LLaMAArgs(**_tiny().args.__dict__)))
    with pytest.raises(KeyError, match=r"lacks 1 model weights, e.g. \['layers.1.ffn_norm"):
        LLaMA(preset='tiny', vocab_size=VOCAB).load_pretrained(str(tmp_path))


def test_hf_permutation_inverse_and_ffn_args():
    w = torch.randn(64, 48)
    assert torch.equal(hf_unpermute(hf_permute(w, 4), 4), w)
    assert not torch.equal(hf_permute(w, 4), w)
    for dim, hidden in ((4096, 11008), (5120, 13824), (64, 176), (64, 100), (64, 512)):
        args = LLaMAArgs(dim=dim, n_heads=1, **_ffn_args(dim, hidden))
        assert args.ffn_hidden_dim == hidden


# ---------------------------------------------------------------------------------------------
# HF format against transformers' own LLaMA
# Not transformers' defaults (1e-6, 10000): a loader that ignores either gives other logits.
# The eps is not small against the embeddings' mean square (~4e-4 at init std 0.02).
RMS_NORM_EPS, ROPE_THETA = 1e-4, 50.0


def _hf_model(n_kv_heads=2, tie=False):
    transformers = pytest.importorskip('transformers')
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=n_kv_heads, rms_norm_eps=RMS_NORM_EPS,
        rope_parameters=dict(rope_type='default', rope_theta=ROPE_THETA),
        max_position_embeddings=128, tie_word_embeddings=tie)
    assert cfg.rope_parameters['rope_theta'] == ROPE_THETA
    torch.manual_seed(1)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith('norm.weight'):
                p.uniform_(0.5, 1.5)
    return model


def _write_sharded_bin(hf, path):
    """HF's sharded ``pytorch_model-XXXXX-of-YYYYY.bin`` + index layout (written by hand:
    transformers 5 only saves safetensors)."""
    hf.config.save_pretrained(path)
    sd = hf.state_dict()
    keys = list(sd)
    half = len(keys) // 2
    weight_map = {}
    for i, part in enumerate((keys[:half], keys[half:])):
        name = f'pytorch_model-{i + 1:05d}-of-00002.bin'
        torch.save({k: sd[k].clone() for k in part}, os.path.join(path, name))
        weight_map.update({k: name for k in part})
    with open(os.path.join(path, 'pytorch_model.bin.index.json'), 'w') as f:
        json.dump({'metadata': {}, 'weight_map': weight_map}, f)


def _as_transformers4_config(path) -> None:
    """Rewrite ``config.json`` as transformers 4.x wrote it (the form of downloaded folders):
    top-level ``rope_theta`` and ``rope_scaling`` instead of ``rope_parameters``."""
    with open(os.path.join(path, 'config.json')) as f:
        cfg = json.load(f)
    rope = cfg.pop('rope_parameters')
    cfg.update(rope_theta=rope['rope_theta'], rope_scaling=None)
    with open(os.path.join(path, 'config.json'), 'w') as f:
        json.dump(cfg, f)


@pytest.mark.parametrize('layout', ['safetensors', 'sharded_bin', 'transformers4_config'])
def test_hf_logits_match_transformers(tmp_path, layout):
    hf = _hf_model()
    if layout == 'sharded_bin':
        _write_sharded_bin(hf, str(tmp_path))
    else:
        hf.save_pretrained(tmp_path)
        assert any(f.endswith('.safetensors') for f in os.listdir(tmp_path))
    if layout == 'transformers4_config':
        _as_transformers4_config(str(tmp_path))
    model = build_llama_from_folder(str(tmp_path)).eval()
    assert (model.args.n_kv_heads, model.args.ffn_hidden_dim) == (2, 176)
    assert (model.args.norm_eps, model.args.rope_theta) == (RMS_NORM_EPS, ROPE_THETA)
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        expected = hf(ids).logits
    got = _logits(model, ids)
    assert (got - expected).abs().max() <= 1e-5
    # Without undoing the rotary permutation the logits would differ: the test can fail.
    with torch.no_grad():
        model.layers[0].attention.wq.weight.copy_(hf_permute(model.layers[0].attention.wq.weight, 4))
    assert (_logits(model, ids) - expected).abs().max() > 1e-3


def test_hf_tied_embeddings(tmp_path):
    hf = _hf_model(n_kv_heads=4, tie=True)
    hf.save_pretrained(tmp_path)
    model = build_llama_from_folder(str(tmp_path)).eval()
    ids = torch.randint(0, VOCAB, (1, 7))
    with torch.no_grad():
        expected = hf(ids).logits
    assert (_logits(model, ids) - expected).abs().max() <= 1e-5
