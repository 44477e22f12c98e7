"""An image-text model merged for images as transformers' ``LlavaForConditionalGeneration``.

LLaVA's layout: a CLIP vision tower whose patch tokens after one block (``vision_feature_layer``,
class token dropped) go through a two-layer GELU MLP (``linear_1``, ``linear_2``) into the LLM's
embedding space, where they replace the ``<image>`` placeholder tokens of the prompt. mma models
of that layout (``CLIPViT(feature_type='patch')`` on an open_clip ViT, ``MLPProjector`` with
hidden width = the LLM's, no adapter left in the tower) export exactly; others are refused with
the reason (LaVIN's CLS-of-every-k-th-block features, its ``LaVINProjector``, routed ViT adapters,
which route each image token by itself and so stay in a merged model).

The tower's weights are open_clip's; :mod:`mma.encoders.hf_clip` reads HF CLIP into them and
:func:`open_clip_to_hf_clip` is its inverse. The placeholder is a new token appended to the
vocabulary (id = the tokenizer's size, a new embedding row when that is the LLM's vocabulary
size): its embedding row is never read (the image features replace it); ``generation_config.json``
suppresses it. The folder's tokenizer gains ``<image>`` at that id and a ``LlavaProcessor`` is
written with it (:mod:`mma.export.folder`).
"""
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from mma.encoders.hf_clip import HF_PREFIX
from mma.errors import MMAUserError
from mma.slots import adapters_left

#: open_clip name -> HF name (after ``vision_model.``), the inverse of mma.encoders.hf_clip.
_RENAMES = (
    ('class_embedding', 'embeddings.class_embedding'),
    ('conv1.weight', 'embeddings.patch_embedding.weight'),
    ('positional_embedding', 'embeddings.position_embedding.weight'),
    ('ln_pre.', 'pre_layrnorm.'),
    ('ln_post.', 'post_layernorm.'),
)
_BLOCK = (('ln_1.', 'layer_norm1.'), ('ln_2.', 'layer_norm2.'), ('mlp.c_fc.', 'mlp.fc1.'),
          ('mlp.c_proj.', 'mlp.fc2.'), ('attn.out_proj.', 'self_attn.out_proj.'))


def open_clip_to_hf_clip(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """An open_clip ``VisionTransformer`` state dict as ``CLIPVisionModel`` keys
    (``vision_model.*``); ``proj`` (CLIPModel's ``visual_projection``) is not part of it."""
    out = {}
    for key, value in state_dict.items():
        if key == 'proj':
            continue
        name = None
        for old, new in _RENAMES:
            if key.startswith(old):
                name = new + key[len(old):]
        if key.startswith('transformer.resblocks.'):
            layer, rest = key[len('transformer.resblocks.'):].split('.', 1)
            head = f'encoder.layers.{layer}.'
            if rest.startswith('attn.in_proj_'):  # packed q|k|v rows
                kind = rest[len('attn.in_proj_'):]
                for part, piece in zip('qkv', value.chunk(3, dim=0)):
                    out[f'{HF_PREFIX}{head}self_attn.{part}_proj.{kind}'] = piece.clone()
                continue
            name = next((head + new + rest[len(old):] for old, new in _BLOCK
                         if rest.startswith(old)), None)
        if name is None:
            raise MMAUserError(f'export: open_clip tower tensor {key!r} has no HF CLIP '
                               'counterpart')
        out[HF_PREFIX + name] = value
    return out


def _clip_layout_problem(tower: nn.Module) -> Optional[str]:
    """Why an open_clip tower is not HF CLIP's ViT (None when it is)."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
    if not isinstance(tower, VisionTransformer):
        return (f'the vision tower is {type(tower).__name__}, not open_clip\'s CLIP '
                'VisionTransformer (a timm tower: SigLIP, EVA02)')
    if getattr(tower, 'attn_pool', None) is not None or \
            not isinstance(tower.ln_pre, nn.LayerNorm):
        return 'the ViT has an attention pool or no ln_pre, unlike CLIP\'s'
    for blk in tower.transformer.resblocks:
        if type(blk) is not ResidualAttentionBlock or hasattr(blk, 'ln_1_kv') or \
                not blk.attn.batch_first or not isinstance(blk.ls_1, nn.Identity) or \
                not isinstance(blk.ls_2, nn.Identity):
            return 'the ViT blocks are not CLIP\'s (layer scale or another block layout)'
    return None


def llava_problems(model: nn.Module) -> List[str]:
    """Why a model merged for images is not a LLaVA layout (empty when it is)."""
    from mma.encoders.clip_vit import CLIPViT
    from mma.projectors.mlp_projector import MLPProjector
    vision, projector = getattr(model, 'vision', None), getattr(model, 'projector', None)
    problems = []
    if vision is None:
        return ['the model has no vision encoder (export the text merge)']
    if not isinstance(vision, CLIPViT):
        problems.append(f'the vision encoder is {type(vision).__name__}, not CLIPViT')
    elif vision.feature_type != 'patch':
        problems.append(f"the visual tokens are CLIPViT feature_type={vision.feature_type!r} "
                        f"(blocks {list(vision.out_indices)}); LLaVA feeds the patch tokens of "
                        "one block (feature_type='patch')")
    elif _clip_layout_problem(vision.tower):
        problems.append(_clip_layout_problem(vision.tower))
    if not isinstance(projector, MLPProjector):
        problems.append(f'the projector is {type(projector).__name__}; LLaVA\'s is a two-layer '
                        "GELU MLP (projector=dict(type='MLPProjector'))")
    elif projector.fc1.out_features != model.llm.dim:
        problems.append(f'MLPProjector hidden={projector.fc1.out_features}; LLaVA\'s hidden '
                        f'width is the LLM dim {model.llm.dim}')
    llm_slots = {id(s.parent) for s in model.llm.adapter_slots('all')}
    kept = adapters_left(model, [s for s in model.adapter_slots() if id(s.parent) not in llm_slots])
    if kept:
        problems.append(f'{len(kept)} adapters stay in the vision encoder (e.g. {kept[0][0]}): '
                        'routed ViT adapters route each image token by itself and cannot be '
                        'folded (others fold when the model is merged for images)')
    return problems


def _act(tower: nn.Module) -> str:
    act = type(tower.transformer.resblocks[0].mlp.gelu).__name__
    if act == 'QuickGELU':
        return 'quick_gelu'
    if act == 'GELU':
        return 'gelu'
    raise MMAUserError(f'export: ViT activation {act} has no HF CLIP counterpart')


def llava_hf_config(model: nn.Module, text_config: dict, image_token_id: int) -> dict:
    """``LlavaConfig`` fields for a model that passed :func:`llava_problems`; the vocabulary
    grows to hold ``image_token_id`` if it is past the LLM's rows."""
    vision, tower = model.vision, model.vision.tower
    width = tower.transformer.width
    blocks = tower.transformer.resblocks
    n = len(blocks)
    vocab = max(text_config['vocab_size'], image_token_id + 1)
    vision_config = dict(
        model_type='clip_vision_model', hidden_size=width,
        intermediate_size=blocks[0].mlp.c_fc.out_features, num_hidden_layers=n,
        num_attention_heads=blocks[0].attn.num_heads, image_size=vision.image_size[0],
        patch_size=tower.conv1.kernel_size[0], hidden_act=_act(tower),
        layer_norm_eps=tower.ln_pre.eps,
        projection_dim=tower.proj.shape[1] if tower.proj is not None else width)
    return dict(model_type='llava', architectures=['LlavaForConditionalGeneration'],
                vision_config=vision_config, text_config=dict(text_config, vocab_size=vocab),
                image_token_id=image_token_id, projector_hidden_act='gelu',
                # hidden_states[0] is the embedding, [i + 1] block i's output
                vision_feature_layer=vision.out_indices[0] - n,
                vision_feature_select_strategy='default', multimodal_projector_bias=True,
                image_seq_length=vision.num_features, tie_word_embeddings=bool(
                    text_config.get('tie_word_embeddings', False)))


def llava_state_dict(model: nn.Module, llm_sd: Dict[str, Tensor],
                     vocab_size: int) -> Dict[str, Tensor]:
    """The Llava state dict from the LLM's (``model.*`` / ``lm_head.weight`` keys), embedding
    and output grown to ``vocab_size`` rows with zeros (the placeholder's)."""
    sd = {}
    for key, value in llm_sd.items():
        extra = vocab_size - value.shape[0]
        if key in ('model.embed_tokens.weight', 'lm_head.weight') and extra > 0:
            value = torch.cat([value, value.new_zeros(extra, value.shape[1])], dim=0)
        sd[key.replace('model.', 'model.language_model.', 1) if key.startswith('model.')
           else key] = value
    for key, value in open_clip_to_hf_clip(model.vision.tower.state_dict()).items():
        # transformers 5 holds the tower as CLIPVisionModel's inner module (no vision_model.)
        sd['model.vision_tower.' + key[len(HF_PREFIX):]] = value
    p = model.projector
    sd.update({'model.multi_modal_projector.linear_1.weight': p.fc1.weight,
               'model.multi_modal_projector.linear_1.bias': p.fc1.bias,
               'model.multi_modal_projector.linear_2.weight': p.fc2.weight,
               'model.multi_modal_projector.linear_2.bias': p.fc2.bias})
    return sd


def check_llava(model: nn.Module) -> None:
    """Raise :class:`MMAUserError` naming every reason the model is no LLaVA layout."""
    problems = llava_problems(model)
    if problems:
        raise MMAUserError('export: this image model cannot be written as '
                           'LlavaForConditionalGeneration: ' + '; '.join(problems) +
                           ". Export the text merge (merge='text') as a causal LM instead.")
