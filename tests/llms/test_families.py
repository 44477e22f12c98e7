"""The family registry: presets stated as data equal the sizes transformers' configs give, a
variant the LLaMA block cannot run is refused naming the file and field, and a registered family
reads its model_type."""
import json
import os

import pytest
import torch
from mmengine.config import Config

import mma
from mma.llms import LLAMA_PRESETS, LLaMA, LLMFamily, read_llama_args, register_family
from mma.llms.family import FAMILIES, family_for, read_llama_like

transformers = pytest.importorskip('transformers')
CONFIGS = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')

# preset: (transformers config class, the released model's config.json fields)
RELEASED = {
    'llama-7b': ('LlamaConfig', dict(hidden_size=4096, intermediate_size=11008,
                                     num_hidden_layers=32, num_attention_heads=32,
                                     rms_norm_eps=1e-6, vocab_size=32000)),
    'qwen2.5-7b': ('Qwen2Config', dict(hidden_size=3584, intermediate_size=18944,
                                       num_hidden_layers=28, num_attention_heads=28,
                                       num_key_value_heads=4, rms_norm_eps=1e-6,
                                       vocab_size=152064, rope_theta=1e6,
                                       max_position_embeddings=32768)),
    'phi-3-mini-4k': ('Phi3Config', dict(hidden_size=3072, intermediate_size=8192,
                                         num_hidden_layers=32, num_attention_heads=32,
                                         num_key_value_heads=32, rms_norm_eps=1e-5,
                                         vocab_size=32064, max_position_embeddings=4096,
                                         sliding_window=2047, rope_theta=10000.0)),
    'phi-3-medium-4k': ('Phi3Config', dict(hidden_size=5120, intermediate_size=17920,
                                           num_hidden_layers=40, num_attention_heads=40,
                                           num_key_value_heads=10, rms_norm_eps=1e-5,
                                           vocab_size=32064, max_position_embeddings=4096,
                                           sliding_window=2047, rope_theta=10000.0)),
}


@pytest.mark.parametrize('preset', sorted(RELEASED))
def test_preset_is_what_the_released_config_reads_as(preset, tmp_path):
    cls, fields = RELEASED[preset]
    getattr(transformers, cls)(**fields, pad_token_id=0).save_pretrained(tmp_path)
    with torch.device('meta'):  # the preset checked against the folder: no disagreement
        model = LLaMA(preset=preset, checkpoint=str(tmp_path))
    file_args = read_llama_args(str(tmp_path))
    assert model.args.ffn_hidden_dim == fields['intermediate_size'] == \
        LLAMA_PRESETS[preset]['intermediate_size']
    assert model.args.max_seq_len == file_args['max_seq_len']


def test_phi3_trainable_count_as_lavin_7b():
    """LaVIN's recipe on the Phi-3-mini preset: routed adapters in 32 blocks of width 3072."""
    cfg = Config.fromfile(os.path.join(CONFIGS, 'lavin_7b_sqa.py'))
    cfg.model.llm = dict(type='LLaMA', preset='phi-3-mini-4k', max_seq_len=512)
    cfg.model.tokenizer = None
    with torch.device('meta'):
        model = mma.build_model(cfg.model)
    d = 3072

    def block(d):
        return (d * 8 + 8) + 2 * (d * 4 + d) + (2 * d + 2)

    expected = 32 * block(d) + 24 * block(1024) + (1024 * 128 + 128 + 128 * d + d) + 2 * d
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected == 2991792


PHI3 = dict(model_type='phi3', hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, vocab_size=300, hidden_act='silu',
            max_position_embeddings=4096, sliding_window=2047)


@pytest.mark.parametrize('change,message', [
    (dict(rope_scaling=dict(type='longrope', short_factor=[1.0] * 8, long_factor=[2.0] * 8)),
     "rope scaling 'longrope'"),
    (dict(rope_parameters=dict(rope_type='default', rope_theta=1e4, partial_rotary_factor=0.75)),
     'partial_rotary_factor=0.75'),
    (dict(hidden_act='gelu'), "hidden_act='gelu'"),
    (dict(model_type='phi'), "model_type='phi' is not a registered LLM family"),
])
def test_unsupported_variant_names_file_and_field(tmp_path, change, message):
    (tmp_path / 'config.json').write_text(json.dumps(dict(PHI3, **change)))
    with pytest.raises(ValueError, match=message) as err:
        read_llama_args(str(tmp_path))
    assert str(tmp_path / 'config.json') in str(err.value)


def test_sliding_window_caps_positions_unless_unused():
    assert read_llama_like(PHI3, 'c.json', 'Phi-3')['max_seq_len'] == 2047
    qwen = dict(PHI3, sliding_window=128, use_sliding_window=False)
    assert read_llama_like(qwen, 'c.json', 'Qwen2')['max_seq_len'] == 4096


def test_a_registered_family_reads_its_model_type():
    fam = LLMFamily(name='test-family', model_types=('test_llama', ),
                    read_hf_config=lambda cfg, path: read_llama_like(cfg, path, 'test'),
                    presets={'test-tiny': dict(dim=32, n_layers=1, n_heads=2, vocab_size=64,
                                               intermediate_size=48)})
    register_family(fam)
    try:
        assert family_for(dict(model_type='test_llama')) is fam
        assert LLaMA(preset='test-tiny').args.ffn_hidden_dim == 48
        with pytest.raises(ValueError, match="already registered.*model_type 'test_llama'"):
            register_family(LLMFamily(name='other', model_types=('test_llama', ),
                                      read_hf_config=fam.read_hf_config))
    finally:
        FAMILIES.pop('test-family')
        LLAMA_PRESETS.pop('test-tiny')


@pytest.mark.parametrize('model_type,expected', [('phi3', 'tokenizer.json'),
                                                 ('llama', 'tokenizer.model')])
def test_folder_with_both_tokenizers_gives_the_familys(tmp_path, model_type, expected):
    """Phi-3 ships a tokenizer.model without its chat tokens: the family names tokenizer.json;
    LLaMA-2 HF folders ship both, and keep the sentencepiece model."""
    from mma.llms.tokenizer import find_tokenizer_file
    (tmp_path / 'config.json').write_text(json.dumps(dict(PHI3, model_type=model_type)))
    for name in ('tokenizer.model', 'tokenizer.json'):
        (tmp_path / name).write_text('')
    assert find_tokenizer_file(str(tmp_path)) == str(tmp_path / expected)
