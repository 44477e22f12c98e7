"""LaVIN with the other vision features and projectors: patch tokens of a SigLIP-style tower (no
CLS, timm blocks with adapters) and LLaVA-1.5's MLP projector train end to end."""
import pytest
import torch

import mma
from mma.models import IGNORE_INDEX
from mma.toy import (TINY_SIGLIP_VISION_CFG, TINY_VISION_CFG, register_tiny_timm_models,
                         tiny_lavin_cfg)


def _batch(k: int):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 500, (2, 10), generator=g)
    ids[:, 0] = 1
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 5:] = ids[:, 5:]
    return dict(input_ids=ids, labels=labels, has_image=torch.tensor([True, False]),
                visual_pos=torch.full((2, ), 3), images=torch.randn(1, 3, 32, 32, generator=g),
                lengths=torch.tensor([10, 10]))


@pytest.mark.parametrize('vision', [
    dict(type='CLIPViT', model_name=None, vision_cfg=TINY_SIGLIP_VISION_CFG,
         feature_type='patch'),
    dict(type='CLIPViT', model_name=None, vision_cfg=dict(TINY_VISION_CFG), quick_gelu=True,
         feature_type='patch', patch_layer=-1),
])
def test_patch_tokens_and_mlp_projector_train(vision):
    register_tiny_timm_models()
    model = mma.build_model(dict(tiny_lavin_cfg(), vision=vision,
                                 projector=dict(type='MLPProjector')))
    assert model.num_visual_tokens == 16  # 4 x 4 patches, no class token
    with torch.no_grad():  # non-zero adapters: their gradients must flow from the loss
        for name, p in model.named_parameters():
            if p.requires_grad and '.adapter.' in name:
                p.normal_(0, 0.1)
    loss = model(_batch(model.num_visual_tokens), mode='loss')['loss']
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    vit = [n for n in grads if n.startswith('vision.')]
    assert vit and all(grads[n] is not None and grads[n].abs().sum() > 0 for n in vit)
    assert grads['projector.fc1.weight'].abs().sum() > 0
    assert not any(p.requires_grad for n, p in model.vision.named_parameters()
                   if '.adapter.' not in n)
