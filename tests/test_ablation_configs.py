"""configs/ablations: each file builds (meta device for 7B/13B), changes what its name says, and
has the trainable-parameter count computed by hand from the adapter formulas (LaVIN paper: 3.8M for 7B;
original lavin/mm_adapter.py)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

import mma
from mma.engine import sync_data_with_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = os.path.join(REPO, 'configs', 'ablations')
CONFIGS = os.path.join(REPO, 'configs')
FILES = sorted(os.path.relpath(p, ABLATIONS)
               for p in glob.glob(os.path.join(ABLATIONS, '**', '*.py'), recursive=True)
               if 'peft' not in os.path.relpath(p, ABLATIONS))  # tests/test_peft_configs.py


# ---- hand formulas (original lavin/mm_adapter.py), groups = 2 ------------------------------------
def routed(d, h=8):
    """down d·h+h, two experts d·h/2+d each, router 2d+2 (h=8: 20d+10)."""
    return d * h + h + 2 * (d * h // 2 + d) + 2 * d + 2


def plain(d, h=8):
    """down d·h+h, one up d·h/2+d (h=8: 13d+8)."""
    return d * h + h + d * h // 2 + d


def count(dim, layers, llm=routed, per_block=1, vit=routed, vit_width=1024, vit_blocks=24,
          proj_hidden=128, h=8):
    total = layers * per_block * llm(dim, h) + 2 * dim  # + modality embedding
    if vit_blocks:  # a vision tower: ViT adapters (if any) and the projector
        total += vit_blocks * vit(vit_width, h) if vit else 0
        total += vit_width * proj_hidden + proj_hidden + proj_hidden * dim + dim
    return total


B7 = dict(dim=4096, layers=32)
B13 = dict(dim=5120, layers=40)
TINY = dict(dim=128, layers=4, vit_width=64, vit_blocks=2, proj_hidden=32)
TEXT = dict(vit_blocks=0)
LLAVA = dict(B7, vit_blocks=23, proj_hidden=4096)

# file -> (formula arguments, hand-computed number or None)
EXPECTED = {
    'lavin_7b_sqa_no-router.py': (dict(B7, llm=plain, vit=plain), 2_691_648),
    'lavin_7b_sqa_ffn.py': (B7, 3_781_296),
    'lavin_7b_sqa_block.py': (dict(B7, per_block=2), 6_403_056),
    'lavin_7b_sqa_no-vit-adapter.py': (dict(B7, vit=None), 3_289_536),
    'lavin_7b_sqa_vit-no-router.py': (dict(B7, vit=plain), 3_609_216),
    'lavin_7b_sqa_dim4.py': (dict(B7, h=4), 2_535_888),
    'lavin_7b_sqa_dim16.py': (dict(B7, h=16), 6_272_112),
    'lavin_7b_sqa_dim32.py': (dict(B7, h=32), 11_253_744),
    'lavin_7b_sqa_temp1.py': (B7, 3_781_296),
    'lavin_7b_sqa_temp5.py': (B7, 3_781_296),
    'lavin_7b_sqa_temp20.py': (B7, 3_781_296),
    'lavin_7b_sqa_tokens3.py': (B7, 3_781_296),
    'lavin_7b_sqa_tokens12.py': (B7, 3_781_296),
    'lavin_7b_sqa_text-only.py': (dict(B7, **TEXT), 2_629_952),
    'lavin_7b_sqa_text-only_no-router.py': (dict(B7, llm=plain, **TEXT), 1_712_384),
    'lavin_7b_sqa_no-router_no-vit-adapter.py': (dict(B7, llm=plain, vit=None), 2_371_968),
    'lavin_13b_sqa_no-router.py': (dict(B13, llm=plain, vit=plain), 3_784_320),
    'lavin_13b_sqa_ffn.py': (B13, 5_390_080),
    'lavin_13b_sqa_block.py': (dict(B13, per_block=2), 9_486_480),
    'lavin_13b_sqa_no-vit-adapter.py': (dict(B13, vit=None), 4_898_320),
    'lavin_13b_sqa_dim16.py': (dict(B13, h=16), 9_060_608),
    'lavin_13b_sqa_text-only.py': (dict(B13, **TEXT), 4_106_640),
    'lavin_13b_sqa_text-only_no-router.py': (dict(B13, llm=plain, **TEXT), 2_672_960),
    'tiny/lavin_tiny_demo_no-router.py': (dict(TINY, llm=plain, vit=plain), 14_928),
    'tiny/lavin_tiny_demo_block.py': (dict(TINY, per_block=2), 29_700),
    'tiny/lavin_tiny_demo_ffn.py': (TINY, 19_420),
    'tiny/lavin_tiny_demo_dim16.py': (dict(TINY, h=16), 29_708),
    'tiny/lavin_tiny_demo_no-vit-adapter.py': (dict(TINY, vit=None), 16_840),
    'tiny/lavin_tiny_demo_tokens1.py': (TINY, 19_420),
    'tiny/lavin_tiny_demo_text-only.py': (dict(TINY, **TEXT), 10_536),
    'tiny/lavin_tiny_demo_qwen2.5.py': (TINY, 19_420),  # frozen biases: the same adapters
    'tiny/lavin_tiny_demo_patch-mlp.py': (dict(TINY, proj_hidden=128), 37_948),
    # MMA on LLaVA-1.5: ViT adapters up to the penultimate block (patch features), MLP projector
    # (hidden = LLM dim: the same formula as LaVIN's with proj_hidden = dim)
    'llava/mma_llava1.5-7b_sqa_cls-features.py': (dict(LLAVA, vit_blocks=24), 24_101_424),
    'llava/mma_llava1.5-7b_sqa_lavin-projector.py': (dict(LLAVA, proj_hidden=128), 3_760_806),
    'llava/mma_llava1.5-7b_sqa_llama3.1.py': (LLAVA, 24_080_934),
    'llava/mma_llava1.5-7b_sqa_qwen2.5.py': (dict(LLAVA, dim=3584, layers=28, proj_hidden=3584),
                                             19_007_998),
}
# what each file must change relative to its parent preset (besides the trainable count)
VISUAL_TOKENS = {'lavin_7b_sqa_tokens3.py': 3, 'lavin_7b_sqa_tokens12.py': 12,
                 'tiny/lavin_tiny_demo_tokens1.py': 1, 'tiny/lavin_tiny_demo_patch-mlp.py': 16,
                 'llava/mma_llava1.5-7b_sqa_cls-features.py': 6,
                 'llava/mma_llava1.5-7b_sqa_lavin-projector.py': 576,
                 'llava/mma_llava1.5-7b_sqa_llama3.1.py': 576,
                 'llava/mma_llava1.5-7b_sqa_qwen2.5.py': 576}
TEMPERATURE = {'lavin_7b_sqa_temp1.py': 1.0, 'lavin_7b_sqa_temp5.py': 5.0,
               'lavin_7b_sqa_temp20.py': 20.0}


def test_formulas_reproduce_the_reference_counts():
    assert routed(4096) == 81_930 and routed(1024) == 20_490 and routed(5120) == 102_410
    assert count(**B7) == 3_781_296 and count(**B13) == 5_390_080


def test_every_ablation_file_has_an_expected_count():
    assert sorted(EXPECTED) == FILES


def _build(cfg):
    if cfg.model.llm.get('preset', '') not in ('', 'tiny'):  # a real size: on the meta device
        with torch.device('meta'):
            return mma.build_model(cfg)
    return mma.build_model(cfg)


@pytest.mark.parametrize('name', FILES)
def test_ablation_builds_with_hand_computed_count(name):
    cfg = Config.fromfile(os.path.join(ABLATIONS, name))
    model = _build(cfg)
    formula, literal = EXPECTED[name]
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == count(**formula) == literal
    # the data pipeline reserves as many positions per image as the model inserts (the config
    # leaves the count to the model; the Runner fills it in)
    assert sync_data_with_model(cfg, model) == model.num_visual_tokens
    k = model.num_visual_tokens
    assert k == VISUAL_TOKENS.get(name, 0 if 'text-only' in name else (2 if 'tiny' in name else 6))
    for key in ('train_dataloader', 'test_dataloader'):
        for t in (cfg.get(key) or {}).get('dataset', {}).get('pipeline', []):
            if t.type == 'TokenizeForLaVIN':
                assert t.num_visual_tokens == k, (key, t)
    if name in TEMPERATURE:
        temps = {m.temperature for m in model.modules() if type(m).__name__ == 'ModalityRouter'}
        assert temps == {TEMPERATURE[name]}
    placement = 'block' if 'block' in name else 'ffn' if 'ffn' in name else 'attn'
    assert cfg.model.llm_adapter_placement == placement
    if 'text-only' in name:
        assert model.vision is None and cfg.model.vision is None


def test_paper_ablation_ladder_configs():
    """The paper's rows: text adapters only -> + image tokens -> + ViT adapters -> + router."""
    text = Config.fromfile(os.path.join(ABLATIONS, 'lavin_7b_sqa_text-only_no-router.py')).model
    img = Config.fromfile(os.path.join(ABLATIONS,
                                       'lavin_7b_sqa_no-router_no-vit-adapter.py')).model
    vit = Config.fromfile(os.path.join(ABLATIONS, 'lavin_7b_sqa_no-router.py')).model
    full = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_7b_sqa.py')).model
    assert text.vision is None and text.llm_adapter.type == 'RepAdapter'
    assert img.vision.feature_every == 4 and img.vit_adapter is None
    assert img.llm_adapter == vit.llm_adapter == text.llm_adapter
    assert vit.vit_adapter.type == 'RepAdapter' and 'router' not in vit.vit_adapter
    assert full.llm_adapter.type == full.vit_adapter.type == 'RoutedRepAdapter'


def test_text_only_model_treats_image_samples_as_text(tmp_path):
    """A text-only config trains on real image samples through its own pipeline, and its output
    for an image sample equals that for the same tokens marked text-only (no modality bit)."""
    from conftest import randomize_adapters
    from mmengine.registry import DefaultScope

    from mma.datasets import mma_collate
    from mma.registry import DATASETS
    from mma.toy import make_tiny_scienceqa
    sqa = make_tiny_scienceqa(str(tmp_path / 'sqa'))
    cfg = Config.fromfile(os.path.join(ABLATIONS, 'tiny', 'lavin_tiny_demo_text-only.py'))
    cfg.merge_from_dict({'model.llm.checkpoint': None,
                         'train_dataloader.dataset.data_root': sqa['data_root'],
                         'model.tokenizer.model_path': sqa['tokenizer']})
    torch.manual_seed(0)
    model = randomize_adapters(mma.build_model(cfg), seed=3).eval()
    sync_data_with_model(cfg, model)  # as mma's Runner does: visual tokens from the model
    with DefaultScope.overwrite_default_scope('mma'):
        ds = DATASETS.build(cfg.train_dataloader.dataset)
    batch = mma_collate([ds[i] for i in range(6)])['inputs']
    assert batch['has_image'].any() and batch['images'] is not None  # the data has images
    loss = model(batch, mode='loss')['loss']
    assert torch.isfinite(loss)
    as_text = dict(batch, has_image=torch.zeros_like(batch['has_image']), images=None)
    assert torch.equal(model(batch, mode='tensor'), model(as_text, mode='tensor'))
    # ... whereas a model with vision tells the two apart (the check above can fail)
    cfg_img = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_tiny_demo.py'))
    cfg_img.merge_from_dict({'model.llm.checkpoint': None, 'model.vision.pretrained': None})
    torch.manual_seed(0)
    with_vision = randomize_adapters(mma.build_model(cfg_img), seed=3).eval()
    with torch.no_grad():
        a = with_vision(dict(batch, images=None), mode='tensor')
        b = with_vision(dict(as_text, images=None), mode='tensor')
    assert not torch.allclose(a, b)


def test_visual_tokens_follow_the_encoder_setting_and_a_hand_set_mismatch_is_an_error():
    # a config that changes only the encoder's feature setting gets matching data
    cfg = Config.fromfile(os.path.join(CONFIGS, 'lavin_7b_sqa.py'))
    cfg.merge_from_dict({'model.vision.feature_every': 12})  # CLS after blocks 12 and 24
    assert cfg.train_dataloader.dataset.pipeline[1].get('num_visual_tokens') is None
    assert sync_data_with_model(cfg) == 2
    assert cfg.train_dataloader.dataset.pipeline[1].num_visual_tokens == 2
    assert cfg.test_dataloader.dataset.pipeline[1].num_visual_tokens == 2
    # a count set by hand that differs from the model's stops before anything is built
    cfg = Config.fromfile(os.path.join(CONFIGS, 'lavin_7b_sqa.py'))
    cfg.merge_from_dict({'test_dataloader.dataset.pipeline.1.num_visual_tokens': 3})
    with pytest.raises(ValueError, match=r'test_dataloader.dataset.pipeline.1.num_visual_tokens=3 '
                       r'but the model inserts 6 visual tokens per image'):
        sync_data_with_model(cfg)
    # a text-only model inserts none
    cfg = Config.fromfile(os.path.join(ABLATIONS, 'lavin_7b_sqa_text-only.py'))
    assert sync_data_with_model(cfg) == 0
