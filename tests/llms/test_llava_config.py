"""A LLaVA folder's ``config.json`` read for its language model: llava-hf's transformers 4
``text_config`` states only the fields that differ from ``LlamaConfig``'s defaults; transformers
fills them in, and so must mma."""
import pytest

from mma.llms.families import family_for
from mma.llms.family import llm_config

transformers = pytest.importorskip('transformers')

# llava-hf/llava-1.5-7b-hf's config.json (transformers 4.36), vision_config left out
LLAVA_HF_TF4 = {
    'architectures': ['LlavaForConditionalGeneration'], 'ignore_index': -100,
    'image_token_index': 32000, 'model_type': 'llava', 'pad_token_id': 32001,
    'projector_hidden_act': 'gelu', 'tie_word_embeddings': False,
    'text_config': {'_name_or_path': 'lmsys/vicuna-7b-v1.5', 'architectures': ['LlamaForCausalLM'],
                    'max_position_embeddings': 4096, 'model_type': 'llama',
                    'rms_norm_eps': 1e-05, 'torch_dtype': 'float16', 'vocab_size': 32064},
    'vision_feature_layer': -2, 'vision_feature_select_strategy': 'default', 'vocab_size': 32064}


def test_llava_hf_text_config_gets_llama_defaults_as_transformers():
    cfg = llm_config(LLAVA_HF_TF4)
    theirs = transformers.LlavaConfig(**LLAVA_HF_TF4).text_config
    for key in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
                'max_position_embeddings', 'rms_norm_eps', 'vocab_size', 'hidden_act'):
        assert cfg[key] == getattr(theirs, key), key
    args = family_for(LLAVA_HF_TF4).read_hf_config(cfg, 'config.json')
    assert (args['dim'], args['n_layers'], args['vocab_size'], args['norm_eps'],
            args['max_seq_len']) == (4096, 32, 32064, 1e-5, 4096)


def test_llava_release_config_is_a_llama_config():
    release = dict(LLAVA_HF_TF4['text_config'], hidden_size=4096, intermediate_size=11008,
                   num_hidden_layers=32, num_attention_heads=32, model_type='llava_llama',
                   mm_projector_type='mlp2x_gelu', vocab_size=32000)
    assert family_for(release).name == 'llama'
    assert llm_config(release)['model_type'] == 'llama'

