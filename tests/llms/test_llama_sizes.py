"""Model sizes come from the checkpoint folder; a preset or keyword that disagrees is an error."""
import json
import re

import pytest
import torch

from mma.llms import LLaMA, save_meta_checkpoint
from mma.llms.checkpoints import meta_params

# Non-default values everywhere, so a field that is ignored cannot pass as the default.
META = dict(dim=64, n_layers=3, n_heads=4, n_kv_heads=2, multiple_of=32, norm_eps=1e-5,
            rope_theta=50000.0)
HF = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
          intermediate_size=160, rms_norm_eps=1e-5, rope_theta=500000.0, vocab_size=300,
          max_position_embeddings=256, hidden_act='silu', tie_word_embeddings=False)


@pytest.fixture(scope='module')
def meta_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = LLaMA(vocab_size=300, **META)
    path = str(tmp_path_factory.mktemp('meta'))
    params = meta_params(model.args)
    params['vocab_size'] = -1  # as in Meta's files: taken from the weights
    save_meta_checkpoint(model.base_state_dict(), path, params)
    return path


@pytest.fixture(scope='module')
def hf_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp('hf')
    (path / 'config.json').write_text(json.dumps(dict(HF, model_type='llama')))
    return str(path)


def _on_meta(**kw) -> LLaMA:
    with torch.device('meta'):
        return LLaMA(**kw)


def test_meta_folder_alone_gives_its_sizes(meta_folder):
    m = _on_meta(checkpoint=meta_folder)
    a = m.args
    assert (a.dim, a.n_layers, a.n_heads, a.n_kv_heads, a.norm_eps, a.rope_theta) == (
        64, 3, 4, 2, 1e-5, 50000.0)
    assert m.vocab_size == 300  # params.json says -1: rows of the embedding in the shard
    assert a.ffn_hidden_dim == LLaMA(vocab_size=300, **META).args.ffn_hidden_dim
    assert all(p.is_meta for p in m.parameters())  # sizes read, no weight loaded
    m.load_pretrained()
    assert not any(p.is_meta for p in m.parameters())


def test_hf_folder_alone_gives_its_sizes(hf_folder):
    a = _on_meta(checkpoint=hf_folder).args
    assert (a.dim, a.n_layers, a.n_heads, a.n_kv_heads, a.ffn_hidden_dim, a.norm_eps,
            a.rope_theta, a.vocab_size, a.max_seq_len) == (64, 3, 4, 2, 160, 1e-5, 500000.0,
                                                             300, 256)


# (field, wrong keyword value, value the file states)
META_FIELDS = [('dim', 128, 64), ('n_layers', 2, 3), ('n_heads', 8, 4), ('n_kv_heads', 4, 2),
               ('norm_eps', 1e-6, 1e-5), ('rope_theta', 10000.0, 50000.0),
               ('vocab_size', 512, 300)]
HF_FIELDS = [('dim', 32, 64), ('n_layers', 4, 3), ('n_heads', 2, 4), ('n_kv_heads', 4, 2),
             ('norm_eps', 1e-6, 1e-5), ('rope_theta', 10000.0, 500000.0),
             ('vocab_size', 32000, 300)]


@pytest.mark.parametrize('layout,field,wrong,right',
                         [('meta', *f) for f in META_FIELDS] + [('hf', *f) for f in HF_FIELDS])
def test_keyword_that_disagrees_names_field_values_and_file(request, layout, field, wrong, right):
    folder = request.getfixturevalue(f'{layout}_folder')
    with pytest.raises(ValueError) as err:
        _on_meta(checkpoint=folder, **{field: wrong})
    msg = str(err.value)
    assert f'keyword {field}={wrong!r}' in msg and f'{field}={right!r}' in msg, msg
    assert {'meta': 'params.json', 'hf': 'config.json'}[layout] in msg and folder in msg


def test_ffn_width_that_disagrees(meta_folder, hf_folder):
    with pytest.raises(ValueError, match=r'FFN width \d+ from keyword multiple_of=256 but '
                       r'.*params.json gives \d+'):
        _on_meta(checkpoint=meta_folder, multiple_of=256)
    with pytest.raises(ValueError, match=r'FFN width 256 from keyword multiple_of=256 but '
                       r'.*config.json gives 160'):
        _on_meta(checkpoint=hf_folder, multiple_of=256)


def test_max_positions_is_an_upper_bound(hf_folder):
    assert _on_meta(checkpoint=hf_folder, max_seq_len=128).max_seq_len == 128  # a shorter limit
    with pytest.raises(ValueError, match=re.escape('keyword max_seq_len=4096 exceeds the 256 '
                                                   'positions')):
        _on_meta(checkpoint=hf_folder, max_seq_len=4096)


def test_preset_that_disagrees_is_named(tmp_path):
    # a LLaMA-2-7B params.json (norm_eps 1e-5) under the LLaMA-1 preset (1e-6)
    torch.manual_seed(0)
    (tmp_path / 'params.json').write_text(json.dumps(dict(
        dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-5, vocab_size=32000)))
    with pytest.raises(ValueError, match=r"preset 'llama-7b' field norm_eps=1e-06 but "
                       r'.*params.json says norm_eps=1e-05'):
        _on_meta(preset='llama-7b', checkpoint=str(tmp_path))
    # the matching preset, or no preset, builds
    assert _on_meta(preset='llama2-7b', checkpoint=str(tmp_path)).args.norm_eps == 1e-5
    assert _on_meta(checkpoint=str(tmp_path)).args.ffn_hidden_dim == 11008
