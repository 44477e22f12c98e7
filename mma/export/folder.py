"""Writing a merged mma model as a transformers folder (see docs/export.md).

The text merge (or a text-only model) becomes a causal LM of its family's architecture, or
``LlamaForCausalLM`` with bias flags (:mod:`mma.export.llm`); the image merge of a LLaVA-layout
model becomes ``LlavaForConditionalGeneration`` (:mod:`mma.export.llava`). The HF model is built on
the meta device and given the exported tensors (no second copy of the weights; a strict check of
the keys against transformers' own model), then written in the hub's layout (transformers 4
and 5 and vLLM read it). Tokenizer files and ``generation_config.json`` are copied from the
folder of the LLM's base weights or the tokenizer's, or written from mma's tokenizer.
"""
import json
import os
import shutil
import warnings
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from mma.errors import MMAUserError

from .llava import check_llava, llava_hf_config, llava_state_dict
from .llm import llm_hf_config, llm_hf_state_dict

#: Tokenizer files copied next to the weights when the source folder has them.
TOKENIZER_FILES = ('tokenizer.model', 'tokenizer.json', 'tokenizer_config.json',
                   'special_tokens_map.json', 'added_tokens.json', 'generation_config.json')


def hf_model(config: dict, state_dict: Dict[str, Tensor]) -> nn.Module:
    """The transformers model of ``config`` (a ``config.json`` dict) holding ``state_dict``
    (strict: every key of the architecture and no other)."""
    import transformers
    if int(transformers.__version__.split('.')[0]) < 5:
        raise MMAUserError(f'export needs transformers >= 5 (installed: '
                           f"{transformers.__version__}): pip install 'mma[export]'; the folders "
                           'it writes are read by transformers >= 4.41 as well')
    cfg = dict(config)
    arch = cfg.pop('architectures')[0]
    config = transformers.AutoConfig.for_model(cfg.pop('model_type'), **cfg)
    config.architectures = [arch]
    with torch.device('meta'):
        model = getattr(transformers, arch)(config)
    model.load_state_dict({k: v.contiguous() for k, v in state_dict.items()}, strict=True,
                          assign=True)
    return model.eval()


#: LlavaForConditionalGeneration's module paths in transformers 5 -> the keys of the LLaVA
#: checkpoints on the hub (transformers 4's layout; transformers 5 and vLLM read them).
LLAVA_HUB_KEYS = (('model.language_model.', 'language_model.model.'),
                  ('lm_head.', 'language_model.lm_head.'),
                  ('model.vision_tower.', 'vision_tower.vision_model.'),
                  ('model.multi_modal_projector.', 'multi_modal_projector.'))


def _legacy_rope(cfg: dict) -> None:
    """Add transformers 4's ``rope_theta`` / ``rope_scaling`` next to 5's ``rope_parameters``
    (readers pinned to transformers 4, vLLM among them, know only those)."""
    for d in (cfg, cfg.get('text_config') or {}):
        rope = d.get('rope_parameters')
        if rope:
            d['rope_theta'] = rope['rope_theta']
            if rope.get('rope_type', 'default') != 'default':
                d['rope_scaling'] = {k: v for k, v in rope.items() if k != 'rope_theta'}


def write_weights_and_config(hf: nn.Module, state_dict: Dict[str, Tensor], out: str,
                             max_shard_size: str = '5GB') -> None:
    """``config.json`` and safetensors shards (with an index when sharded) in the hub's layout:
    a causal LM's keys are transformers' own; LLaVA's are renamed by :data:`LLAVA_HUB_KEYS`. A
    tied output head is not written (the embedding is)."""
    from huggingface_hub import save_torch_state_dict
    config = hf.config
    dtype = next(iter(state_dict.values())).dtype
    config.dtype = dtype
    os.makedirs(out, exist_ok=True)
    config.save_pretrained(out)
    path = os.path.join(out, 'config.json')
    with open(path, encoding='utf-8') as f:
        cfg = json.load(f)
    _legacy_rope(cfg)
    cfg['torch_dtype'] = str(dtype).replace('torch.', '')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    text = cfg.get('text_config', cfg)
    sd = {}
    for key, value in state_dict.items():
        if key == 'lm_head.weight' and (text.get('tie_word_embeddings') or
                                         cfg.get('tie_word_embeddings')):
            continue
        if cfg.get('model_type') == 'llava':
            old, new = next((o, n) for o, n in LLAVA_HUB_KEYS if key.startswith(o))
            key = new + key[len(old):]
        sd[key] = value.contiguous()
    save_torch_state_dict(sd, out, max_shard_size=max_shard_size)


def _tokenizer(model: nn.Module):
    """mma's tokenizer of a LaVIN model (None for a bare LLM or when its file is missing)."""
    if getattr(model, 'llm', model) is model:
        return None
    try:
        return model.tokenizer
    except FileNotFoundError:
        return None


def _tokenizer_sources(model: nn.Module) -> List[str]:
    dirs = []
    path = getattr(getattr(model, 'llm', model), 'weights_path', None)
    if path and os.path.isdir(path):
        dirs.append(path)
    tok_path = getattr(_tokenizer(model), 'model_path', None)
    if tok_path:
        dirs.append(os.path.dirname(os.path.abspath(tok_path)))
    return dirs


def copy_tokenizer_files(model: nn.Module, out: str) -> List[str]:
    """Copy :data:`TOKENIZER_FILES` from the LLM's weights folder, else the tokenizer's folder
    (a file of the first folder that has it); returns the names copied."""
    copied = []
    for name in TOKENIZER_FILES:
        for folder in _tokenizer_sources(model):
            src = os.path.join(folder, name)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(out, name))
                copied.append(name)
                break
    tok = _tokenizer(model)
    tok_path = getattr(tok, 'model_path', None)
    if tok_path and not copied and os.path.basename(tok_path) != 'tokenizer.model':
        shutil.copyfile(tok_path, os.path.join(out, 'tokenizer.model'))  # a renamed SP file
        copied.append('tokenizer.model')
    sp = getattr(tok, 'sp', None)
    if 'tokenizer.model' in copied and 'tokenizer_config.json' not in copied and sp is not None:
        # a Meta folder's bare tokenizer.model: transformers reads it as LLaMA's tokenizer
        # (BOS added, as mma's prompts have it) once told the class and the special pieces
        pieces = {f'{k}_token': sp.id_to_piece(i) for k, i in
                  (('bos', sp.bos_id()), ('eos', sp.eos_id()), ('unk', sp.unk_id())) if i >= 0}
        with open(os.path.join(out, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
            json.dump(dict(tokenizer_class='LlamaTokenizer', add_bos_token=True,
                           add_eos_token=False, **pieces), f, indent=2)
        copied.append('tokenizer_config.json')
    return copied


def write_image_processor(model: nn.Module, out: str) -> None:
    """``preprocessor_config.json``: CLIP's image processor at the tower's size and
    normalisation (resize the short side, centre crop)."""
    h, w = model.vision.image_size
    cfg = dict(image_processor_type='CLIPImageProcessor', do_resize=True,
               size=dict(shortest_edge=min(h, w)), resample=3, do_center_crop=True,
               crop_size=dict(height=h, width=w), do_rescale=True, rescale_factor=1 / 255,
               do_normalize=True, image_mean=list(model.vision.image_mean),
               image_std=list(model.vision.image_std), do_convert_rgb=True)
    with open(os.path.join(out, 'preprocessor_config.json'), 'w', encoding='utf-8') as f:
        json.dump(cfg, f, indent=2)


def write_generation_config(model: nn.Module, out: str,
                            suppress: Optional[List[int]] = None) -> None:
    """Keep the copied ``generation_config.json`` or write one from mma's BOS/EOS ids (the
    tokenizer's, else the written ``config.json``'s); ``suppress``: token ids never to generate."""
    path = os.path.join(out, 'generation_config.json')
    gen = {}
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as f:
            gen = json.load(f)
    else:
        with open(os.path.join(out, 'config.json'), encoding='utf-8') as f:
            written = json.load(f)  # with the architecture's defaults filled in
        tok = _tokenizer(model)
        text = written.get('text_config', written)
        for field in ('bos', 'eos', 'pad'):
            value = getattr(tok, f'{field}_id', None)
            value = text.get(f'{field}_token_id') if value is None or value < 0 else value
            if value is not None:
                gen[f'{field}_token_id'] = value
    if suppress:
        gen['suppress_tokens'] = sorted(set(gen.get('suppress_tokens') or []) | set(suppress))
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(gen, f, indent=2)


def write_llava_processor(out: str, config: dict) -> bool:
    """Add ``<image>`` to the folder's tokenizer (at ``config['image_token_id']``) and write a
    ``LlavaProcessor`` (prompt text with ``<image>`` -> ids with one placeholder per patch).
    Returns False, with a warning, when the folder has no tokenizer transformers reads."""
    import transformers
    try:
        tok = transformers.AutoTokenizer.from_pretrained(out)
    except (OSError, ValueError, TypeError) as err:
        warnings.warn(f'export: no LlavaProcessor written ({out} has no tokenizer transformers '
                      f'reads: {err}); prompts then need image_token_id '
                      f'{config["image_token_id"]} themselves')
        return False
    tok.add_tokens(['<image>'], special_tokens=True)
    got = tok.convert_tokens_to_ids('<image>')
    if got != config['image_token_id']:
        raise MMAUserError(f'export: the tokenizer of {out} gives <image> the id {got}, the '
                           f'model expects {config["image_token_id"]} (is mma\'s tokenizer '
                           'the one in the base weights folder?)')
    processor = transformers.LlavaProcessor(
        image_processor=transformers.AutoImageProcessor.from_pretrained(out), tokenizer=tok,
        patch_size=config['vision_config']['patch_size'],
        vision_feature_select_strategy=config['vision_feature_select_strategy'],
        image_token='<image>', num_additional_image_tokens=1)  # CLIP's class token
    processor.save_pretrained(out)
    return True


def export_hf(model: nn.Module, out: str, modality: str = 'text', family: Optional[str] = None,
              max_shard_size: str = '5GB') -> str:
    """Write a merged mma model as a transformers folder.

    Args:
        model: A model from ``mma.load_model(config, checkpoint, merge=...)`` (a LaVIN merged for
            one modality), or a bare mma LLM.
        out: Output folder (created).
        modality: The modality ``model`` was merged for: ``'text'`` writes the LLM alone as a
            causal LM, ``'image'`` the whole model as ``LlavaForConditionalGeneration``.
        family: The LLM family to export as (default: the base weights folder's, see
            :func:`mma.export.llm.llm_family`).
        max_shard_size: Largest safetensors shard (``'5GB'``); more shards get an index.

    Returns:
        The architecture written (``'LlamaForCausalLM'``, ``'LlavaForConditionalGeneration'``...).

    Raises:
        MMAUserError: the model is not merged, or its layout has no transformers counterpart
            (the message names why).
    """
    llm = getattr(model, 'llm', model)
    if modality not in ('text', 'image'):
        raise MMAUserError(f"export: modality {modality!r}: expected 'text' or 'image'")
    if getattr(llm, 'quantization', None) is not None:
        raise MMAUserError(f'export: the LLM is quantised ({llm.quantization}); export the model '
                           'loaded without quantization (its merged weights are what is written)')
    _, config = llm_hf_config(llm, family)
    sd = llm_hf_state_dict(llm, family)
    suppress = None
    if modality == 'image':
        check_llava(model)
        tok = _tokenizer(model)
        image_id = tok.vocab_size if tok is not None else llm.vocab_size  # a new token's id
        if image_id > llm.vocab_size:
            raise MMAUserError(f'export: the tokenizer has {image_id} tokens, the LLM '
                               f'{llm.vocab_size} embedding rows')
        config = llava_hf_config(model, config, image_id)
        sd = llava_state_dict(model, sd, config['text_config']['vocab_size'])
        suppress = [image_id]
    # one dtype for the folder (a frozen_dtype model keeps its projector in fp32)
    sd = {k: v.to(llm.dtype) if v.is_floating_point() else v for k, v in sd.items()}
    hf = hf_model(config, sd)  # checks the state dict against transformers' own model
    write_weights_and_config(hf, sd, out, max_shard_size)
    if model is not llm:
        copy_tokenizer_files(model, out)
    write_generation_config(model, out, suppress)
    if modality == 'image':
        write_image_processor(model, out)
        write_llava_processor(out, config)
    return config['architectures'][0]
