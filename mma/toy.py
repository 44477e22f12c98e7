"""Toy assets for the demo, the benchmarks and the Quickstart (and the tests): SentencePiece and HF
``tokenizer.json`` tokenizers trained in-process, a tiny ScienceQA-style data set and tiny LaVIN
configs. Nothing here downloads anything."""
import io
import os
from typing import Iterable, Optional

TINY_VISION_CFG = dict(image_size=32, patch_size=8, width=64, head_width=16, layers=2,
                       mlp_ratio=4.0, embed_dim=32)
# open_clip vision_cfgs of tiny timm-based towers shaped like SigLIP (no class token, attention-
# pool head, no projection) and EVA02 (rotary embedding, SwiGLU, unfused q/k/v); the timm models
# they name exist after register_tiny_timm_models().
TINY_SIGLIP_VISION_CFG = dict(timm_model_name='mma_tiny_siglip', timm_pool='map', timm_proj='none',
                              image_size=32, embed_dim=64)
TINY_EVA_VISION_CFG = dict(timm_model_name='mma_tiny_eva02', timm_pool='token', timm_proj=None,
                           image_size=32, embed_dim=32)


def register_tiny_timm_models() -> None:
    """Register the timm models of :data:`TINY_SIGLIP_VISION_CFG` and :data:`TINY_EVA_VISION_CFG`:
    ``vit_base_patch16_siglip_224``'s and ``eva02_large_patch14_clip_336``'s arguments at 32 px,
    width 64, 4 heads, 3 blocks. Idempotent."""
    import timm
    from timm.models import register_model
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer
    tiny = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4)

    def model_args(kwargs: dict) -> dict:  # timm.create_model's bookkeeping is not for the model
        return {k: v for k, v in kwargs.items() if not k.startswith(('pretrained', 'cache_dir'))}
    if not timm.is_model('mma_tiny_siglip'):
        def mma_tiny_siglip(pretrained=False, **kwargs):
            return VisionTransformer(**{**tiny, 'class_token': False, 'global_pool': 'map',
                                        **model_args(kwargs)})
        register_model(mma_tiny_siglip)
    if not timm.is_model('mma_tiny_eva02'):
        def mma_tiny_eva02(pretrained=False, **kwargs):
            return Eva(**{**tiny, **dict(mlp_ratio=4 * 2 / 3, qkv_fused=False, swiglu_mlp=True,
                                         scale_mlp=True, scale_attn_inner=True,
                                         use_rot_pos_emb=True, ref_feat_shape=(4, 4),
                                         global_pool='token'), **model_args(kwargs)})
        register_model(mma_tiny_eva02)


def train_tokenizer(sentences: Iterable[str], path: str, vocab_size: int = 512) -> str:
    """Train a LLaMA-style BPE SentencePiece model (unk 0, bos 1, eos 2, no pad) into ``path``."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)), model_writer=buf, vocab_size=vocab_size,
        model_type='bpe', unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True,
        num_threads=1, hard_vocab_limit=False, minloglevel=2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(buf.getvalue())
    return path


# Special tokens and tokenizer_config.json entries of the two HF tokenizer.json styles: LLaMA-3
# (BOS added by the template post-processor) and Qwen2.5 (no BOS; pad = EOS).
HF_TOKENIZER_STYLES = {
    'llama3': dict(specials=('<|begin_of_text|>', '<|end_of_text|>'),
                   config=dict(bos_token='<|begin_of_text|>', eos_token='<|end_of_text|>')),
    'qwen2.5': dict(specials=('<|endoftext|>', '<|im_start|>', '<|im_end|>'),
                    config=dict(bos_token=None, eos_token='<|endoftext|>',
                                pad_token='<|endoftext|>')),
}


def train_hf_tokenizer(sentences: Iterable[str], folder: str, style: str = 'llama3',
                       vocab_size: int = 300) -> str:
    """Train a byte-level BPE ``tokenizer.json`` (as LLaMA-3 and Qwen ship) into ``folder``,
    with a ``tokenizer_config.json`` as ``transformers``' ``save_pretrained`` writes it.

    Args:
        sentences: Training text.
        folder: Output folder.
        style: ``'llama3'`` (BOS ``<|begin_of_text|>``, EOS ``<|end_of_text|>``) or
            ``'qwen2.5'`` (no BOS, EOS = pad = ``<|endoftext|>``, ``<|im_start|>``,
            ``<|im_end|>``); the special tokens get the ids after the base vocabulary.
        vocab_size: Base vocabulary size (the 256 bytes included).

    Returns:
        The path of ``tokenizer.json``.
    """
    import json
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    spec = HF_TOKENIZER_STYLES[style]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(sentences), trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens(list(spec['specials']))
    bos = spec['config']['bos_token']
    tok.post_processor = (processors.TemplateProcessing(
        single=f'{bos} $A', pair=f'{bos} $A {bos} $B',
        special_tokens=[(bos, tok.token_to_id(bos))]) if bos else
        processors.ByteLevel(trim_offsets=False))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'tokenizer.json')
    tok.save(path)
    # Qwen's own file says "bos_token": null: written as such
    config = dict(backend='tokenizers', model_max_length=1 << 30,
                  tokenizer_class='TokenizersBackend', **spec['config'])
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(config, f, indent=2)
    return path


def tiny_lavin_cfg(vocab_size: int = 512, router: bool = True, vit_adapters: bool = True,
                   placement: str = 'attn', dropout: float = 0.0,
                   llm: Optional[dict] = None) -> dict:
    """A tiny LaVIN model config (LLaMA dim 64 x 2 layers, 2-block ViT of width 64 at 32 px)."""
    adapter = (dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=dropout,
                    router=dict(type='ModalityRouter', temperature=10.0))
               if router else dict(type='RepAdapter', hidden_dim=8, groups=2, dropout=dropout))
    llm_cfg = dict(type='LLaMA', preset='tiny', vocab_size=vocab_size)
    llm_cfg.update(llm or {})
    return dict(
        type='LaVIN',
        llm=llm_cfg,
        vision=dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_every=1,
                    vision_cfg=dict(TINY_VISION_CFG)),
        llm_adapter=adapter,
        llm_adapter_placement=placement,
        vit_adapter=dict(adapter) if vit_adapters else None,
        projector=dict(type='LaVINProjector', hidden=16),
    )


# ------------------------------------------------------------------------------------------------
# Tiny data sets in the real ScienceQA / LLaVA-Instruct / Alpaca formats.
_WORDS = ('red blue green cat dog sun moon tree rock water fire plant animal light heavy north '
          'south magnet force energy cell leaf river map city').split()


def _png(path: str, seed: int, mode: str = 'RGB', size: int = 40) -> None:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr, 'RGB').convert(mode).save(path)


def make_tiny_scienceqa(root: str, n: int = 12, seed: int = 0) -> dict:
    """Write a ScienceQA-layout data set (problems.json, pid_splits.json, captions.json,
    images/{split}/{qid}/image.png) of ``n`` problems per train/val/test split, about half with
    an image, plus a tokenizer trained on its text. Returns ``dict(data_root, tokenizer)``."""
    import json
    import random
    rnd = random.Random(seed)
    problems, splits, captions = {}, {'train': [], 'val': [], 'test': []}, {}
    qid = 0
    for split in splits:
        for _ in range(n):
            qid += 1
            k = rnd.randint(2, 4)
            words = lambda m: ' '.join(rnd.choice(_WORDS) for _ in range(m))  # noqa: E731
            has_img = qid % 2 == 0
            problems[str(qid)] = dict(
                question=f'Which {words(2)} is {words(1)}?', choices=[words(2) for _ in range(k)],
                answer=rnd.randrange(k), hint=words(rnd.choice([0, 5])),
                image='image.png' if has_img else None, task='closed choice',
                grade=f'grade{rnd.randint(1, 12)}',
                subject=rnd.choice(['natural science', 'social science', 'language science']),
                topic='t', category='c', skill='s', lecture=f'{words(6)}\n{words(4)}',
                solution=f'{words(5)}.  {words(3)}', split=split)
            splits[split].append(str(qid))
            captions[str(qid)] = f'A picture of {words(3)}.'
            if has_img:
                _png(os.path.join(root, 'images', split, str(qid), 'image.png'), qid)
    splits['trainval'] = splits['train'] + splits['val']
    os.makedirs(root, exist_ok=True)
    for name, obj in (('problems.json', problems), ('pid_splits.json', splits),
                      ('captions.json', {'captions': captions})):
        with open(os.path.join(root, name), 'w') as f:
            json.dump(obj, f)
    text = [p['question'] + ' ' + ' '.join(p['choices']) + ' ' + p['lecture'] + p['solution']
            for p in problems.values()]
    text += ['Question: Context: Options: Response: The answer is A. B. C. D. BECAUSE: Image: N/A',
             'Instruction: Response: What is in the picture?'] * 4
    tok = train_tokenizer(text * 3, os.path.join(root, 'tokenizer.model'))
    return dict(data_root=root, tokenizer=tok)


def make_tiny_instruction_data(root: str, seed: int = 0) -> dict:
    """Write tiny Alpaca, LLaVA-Instruct (with COCO ``train2014`` images) and LaVIN
    ``all_data.json`` files. Returns their paths."""
    import json
    os.makedirs(root, exist_ok=True)
    alpaca = [dict(instruction='Name a color.', input='', output='Red.'),
              dict(instruction='Add the numbers.', input='2 and 3', output='5.')]
    llava = [dict(id='000000000009', image='000000000009.jpg', conversations=[
        dict(**{'from': 'human', 'value': '<image>\nWhat is in the picture?'}),
        dict(**{'from': 'gpt', 'value': 'A cat on a tree.'}),
        dict(**{'from': 'human', 'value': 'What color is it?'}),
        dict(**{'from': 'gpt', 'value': 'It is red.'})])]
    coco = os.path.join(root, 'coco', 'train2014')
    _png(os.path.join(coco, 'COCO_train2014_000000000009.jpg'), seed)
    _png(os.path.join(root, 'sqa_images', 'train', '5', 'image.png'), seed + 1)
    lavin = {'train': [
        dict(instruction='Instruction: Describe the image.\nResponse:', answer='A dog.',
             image='000000000009.jpg', image_source='coco', qid='c1'),
        dict(instruction='Instruction: Which is a magnet?\nResponse:', answer='The rock.',
             image='image.png', image_source='sqa', qid='5'),
        dict(instruction='Instruction: Say hi.\nResponse:', answer='Hi.', image=None,
             image_source=None, qid='t1')]}
    paths = dict(alpaca=os.path.join(root, 'alpaca_data.json'),
                 llava=os.path.join(root, 'complex_reasoning_77k.json'),
                 lavin=os.path.join(root, 'all_data.json'), coco=coco,
                 sqa_images=os.path.join(root, 'sqa_images', 'train'))
    for key, obj in (('alpaca', alpaca), ('llava', llava), ('lavin', lavin)):
        with open(paths[key], 'w') as f:
            json.dump(obj, f)
    return paths
