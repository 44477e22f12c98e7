"""The LLM-family and LLaVA-1.5-style presets build on the meta device with hand-computed trainable
counts, and their data pipelines take the model's visual tokens and image settings."""
import os

import pytest
import torch
from mmengine.config import Config

import mma
from mma.engine import sync_data_with_model

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def llm_block(d: int) -> int:
    """A routed adapter of an LLM block: down d*8+8, two up-projections d*4+d, router 2d+2."""
    return (d * 8 + 8) + 2 * (d * 4 + d) + (2 * d + 2)


VIT_BLOCK = llm_block(1024)  # 20,490
LAVIN_PROJECTOR = {4096: 1024 * 128 + 128 + 128 * 4096 + 4096,
                   3584: 1024 * 128 + 128 + 128 * 3584 + 3584}
MLP_PROJECTOR = 1024 * 4096 + 4096 + 4096 * 4096 + 4096  # LLaVA-1.5's mlp2x_gelu

EXPECTED = {  # config: (formula, literal, LLM dim, visual tokens, image side)
    'lavin_vicuna-7b-v1.5_sqa.py': (32 * llm_block(4096) + 24 * VIT_BLOCK +
                                    LAVIN_PROJECTOR[4096] + 2 * 4096, 3781296, 4096, 6, 224),
    'lavin_llama3.1-8b_sqa.py': (32 * llm_block(4096) + 24 * VIT_BLOCK + LAVIN_PROJECTOR[4096] +
                                 2 * 4096, 3781296, 4096, 6, 224),
    'lavin_mistral-7b_sqa.py': (32 * llm_block(4096) + 24 * VIT_BLOCK + LAVIN_PROJECTOR[4096] +
                                2 * 4096, 3781296, 4096, 6, 224),
    'lavin_qwen2.5-7b_sqa.py': (28 * llm_block(3584) + 24 * VIT_BLOCK + LAVIN_PROJECTOR[3584] +
                                2 * 3584, 3099784, 3584, 6, 224),
    # ViT adapters in the 23 blocks up to the penultimate one (the patch-feature block)
    'mma_llava1.5-7b_sqa.py': (32 * llm_block(4096) + 23 * VIT_BLOCK + MLP_PROJECTOR + 2 * 4096,
                               24080934, 4096, 576, 336),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_family_config_builds_with_hand_computed_count(name):
    formula, literal, dim, tokens, side = EXPECTED[name]
    cfg = Config.fromfile(os.path.join(CONFIGS, name))
    with torch.device('meta'):  # the weights folders do not exist here: sizes from the preset
        model = mma.build_model(cfg)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == formula == literal
    assert model.llm.dim == dim and model.num_visual_tokens == tokens
    assert sync_data_with_model(cfg, model) == tokens
    for key in ('train_dataloader', 'test_dataloader'):
        load, tokenize = cfg[key].dataset.pipeline
        assert tokenize.num_visual_tokens == tokens
        assert load.size in (side, [side, side], (side, side))


def test_llava_config_takes_the_towers_normalisation():
    cfg = Config.fromfile(os.path.join(CONFIGS, 'mma_llava1.5-7b_sqa.py'))
    with torch.device('meta'):
        model = mma.build_model(cfg)
    sync_data_with_model(cfg, model)
    load = cfg.train_dataloader.dataset.pipeline[0]
    assert list(load.size) == [336, 336]
    openai_mean = (0.48145466, 0.4578275, 0.40821073)
    assert load.mean == pytest.approx(openai_mean) and load.mean == pytest.approx(
        list(model.vision.image_mean))
    qwen = Config.fromfile(os.path.join(CONFIGS, 'lavin_qwen2.5-7b_sqa.py'))
    with torch.device('meta'):
        assert mma.build_model(qwen).llm.args.qkv_bias
