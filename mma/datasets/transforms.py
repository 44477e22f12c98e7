"""Per-sample transforms: image loading/normalisation and LaVIN tokenisation.

A sample dict carries ``prompt`` (text up to and including ``Response:``), ``answer`` (target text;
absent or None for prediction), ``img_path`` (None for text-only samples) and metadata. The pipeline
``[LoadLaVINImage, TokenizeForLaVIN]`` turns it into ``dict(inputs=..., data_samples=...)`` for
:func:`mma.datasets.mma_collate`.
"""
import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from mma.errors import CorruptFileError, MMAUserError
from mma.registry import TOKENIZERS, TRANSFORMS
from mma.sequence import num_positions, pack

from .templates import prompt_template

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OVERLONG_POLICIES = ('truncate_prompt', 'skip')


def to_rgb(img: Image.Image, background: Optional[Sequence[int]] = None) -> Image.Image:
    """Any PIL image as 8-bit RGB.

    16/32-bit grayscale (``I;16``, ``I``) is rescaled to 8 bits (PIL's own ``convert`` clips it);
    images with alpha (RGBA, LA, palette with transparency) drop alpha as the reference's
    ``convert('RGB')`` does, or are composited over ``background`` when given.
    """
    if img.mode.startswith('I'):  # 16-bit (or 32-bit int) grayscale
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (img.mode.startswith('I;16') or arr.max() > 255) else 255.0
        img = Image.fromarray(np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8), 'L')
    elif img.mode == 'F':
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8), 'L')
    if background is not None and (img.mode in ('RGBA', 'LA', 'PA') or
                                   (img.mode == 'P' and 'transparency' in img.info)):
        rgba = img.convert('RGBA')
        canvas = Image.new('RGBA', rgba.size, tuple(background) + (255,))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert('RGB')


def read_rgb(path: str, background: Optional[Sequence[int]] = None,
             sample: Optional[str] = None) -> Image.Image:
    """Open ``path`` fully (every pixel decoded) as 8-bit RGB (:func:`to_rgb`).

    ``sample`` (a qid) is named in the errors: a missing file is a ``FileNotFoundError``, a file
    PIL cannot decode (corrupt, truncated, not an image) a ``ValueError``; both name the file.
    """
    where = f' (sample {sample})' if sample is not None else ''
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image not found: {path}{where}')
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not as a half-grey picture
            return to_rgb(img, background)
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptFileError(f'cannot read image {path}{where}: corrupt or truncated '
                               f'({type(err).__name__}: {err})') from None


@TRANSFORMS.register_module()
class LoadLaVINImage:
    """Read ``img_path`` as RGB, resize (bicubic) and normalise into ``image`` (3, S, S) float.

    Text-only samples (``img_path`` None) get ``image = None``.

    Args:
        size: Output side (224 for CLIP ViT-L/14). None (the default): the vision encoder's
            ``image_size``, filled in by mma's Runner (:func:`mma.engine.sync_data_with_model`);
            set by hand it must match the encoder's.
        mean, std: Normalisation in [0, 1] units; LaVIN presets use ImageNet's, as the reference
            did (not CLIP's). None: the encoder's own (its tower's preprocessing config).
        background: RGB fill under transparent pixels; None drops alpha like the reference.
        pad_to_square: Pad the image to a square with the mean colour before resizing, centred
            (LLaVA-1.5's ``expand2square`` with ``int(255 * mean)``; ``image_aspect_ratio='pad'``)
            instead of squashing it.
    """

    #: Constructor arguments that take the model's value when left None (``arg: model fact``,
    #: see :func:`mma.engine.model_data_facts`).
    FROM_MODEL = dict(size='image_size', mean='image_mean', std='image_std')

    def __init__(self, size: Optional[Union[int, Tuple[int, int]]] = None,
                 mean: Optional[Sequence[float]] = IMAGENET_MEAN,
                 std: Optional[Sequence[float]] = IMAGENET_STD,
                 background: Optional[Sequence[int]] = None, pad_to_square: bool = False):
        if size is None or mean is None or std is None:
            raise ValueError('LoadLaVINImage: size/mean/std None means "the vision encoder\'s": '
                             "build the dataset through mma's Runner (or call "
                             'mma.engine.sync_data_with_model(cfg)), which fills them in')
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.background = background
        self.pad_to_square = pad_to_square

    def load(self, path: str, sample: Optional[str] = None) -> torch.Tensor:
        """The image at ``path`` as a normalised (3, H, W) tensor.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a readable image (corrupt or truncated).
        """
        return self.from_image(read_rgb(path, self.background, sample))

    def from_image(self, img: Image.Image) -> torch.Tensor:
        """An image already in memory (any PIL mode, :func:`to_rgb`) as :meth:`load` makes one
        from a file: RGB, pad-to-square if set, bicubic resize, normalisation; a normalised
        (3, H, W) tensor."""
        img = to_rgb(img, self.background)
        if self.pad_to_square and img.width != img.height:
            side = max(img.size)
            fill = tuple(int(255 * float(m)) for m in self.mean.flatten())
            canvas = Image.new('RGB', (side, side), fill)
            canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
            img = canvas
        img = img.resize((self.size[1], self.size[0]), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (x.float() / 255.0 - self.mean) / self.std  # (3, H, W)

    def __call__(self, results: dict) -> dict:
        path = results.get('img_path')
        results['image'] = self.load(path, results.get('qid')) if path is not None else None
        return results


def word_separator(tokenizer) -> str:
    """``''`` when a piece tokenised on its own already starts a new word (sentencepiece's dummy
    prefix: ``'a'`` and ``'b'`` decode as ``'a b'``), else ``' '`` (byte-level BPE: ``'ab'``)."""
    joined = tokenizer.decode(tokenizer.encode('a') + tokenizer.encode('b'))
    return '' if joined.strip() == 'a b' else ' '


@TRANSFORMS.register_module()
class TokenizeForLaVIN:
    """Tokenise a sample into LaVIN's text sequence and labels, and pack it.

    Text: ``[BOS] tok(image_prefix) tok(prompt) tok(answer) [EOS]`` for image samples (visual
    tokens go before ``tok(prompt)``) and ``[BOS] tok(text_prefix) tok(prompt) tok(answer) [EOS]``
    for text-only samples; each piece is tokenised on its own, without BOS/EOS, and packed by
    :func:`mma.sequence.pack` (the layout module). BOS and EOS are the tokenizer's own; a tokenizer
    without BOS (Qwen2.5) starts the text with the prefix. The prompt and the answer start a new
    word as they do with sentencepiece's dummy prefix: for tokenizers without one (the byte-level
    BPE of an HF ``tokenizer.json``) they are tokenised with a leading space
    (:meth:`encode_piece`). For prediction (``with_answer=False``) the text stops after the prompt.

    Over-long samples: the model sees :func:`mma.sequence.num_positions` positions (modality
    token, text, k visual tokens for image samples). Above ``max_len``, ``'truncate_prompt'``
    drops prompt tokens from the start of the prompt (the options and ``Response:`` stay next to
    the answer); ``'skip'`` drops the sample. Answer tokens are never dropped: a sample whose
    answer alone does not fit is skipped under either policy. The dataset applies the policy once,
    counts and warns (:meth:`measure`); see :class:`~mma.datasets.LaVINDataset`.

    Args:
        tokenizer: A tokenizer object or its ``TOKENIZERS`` config. None (the default in configs):
            the model's (``model.tokenizer``), filled in by mma's Runner.
        max_len: Maximum positions the model sees (512 in LaVIN); None for no limit.
        num_visual_tokens: k, the visual tokens the model inserts per image (6 for LaVIN's
            ViT-L/14). None (the default in configs): filled in from the model by mma's Runner
            (:func:`mma.engine.sync_data_with_model`); set by hand it must match the model.
        overlong: ``'truncate_prompt'`` or ``'skip'``.
        image_prefix, text_prefix: The text before the visual tokens / in their place; None:
            the template's (``"Image: "`` / ``"Image: N/A"`` for LaVIN's).
        template: A registered prompt template (:mod:`mma.datasets.templates`): ``'lavin'``
            (LaVIN's, the default) or ``'llava_v1'`` (LLaVA-1.5's conversation).
        with_answer: False for prediction: the text stops after the prompt, no labels.
        meta_keys: Sample keys copied into ``data_samples``.
    """

    #: Constructor arguments that take the model's value when left None (``arg: model fact``).
    FROM_MODEL = dict(tokenizer='tokenizer', num_visual_tokens='num_visual_tokens')

    def __init__(self, tokenizer=None, max_len: Optional[int] = 512,
                 num_visual_tokens: Optional[int] = None,
                 overlong: str = 'truncate_prompt', image_prefix: Optional[str] = None,
                 text_prefix: Optional[str] = None, with_answer: bool = True,
                 meta_keys: Sequence[str] = ('qid', 'answer_idx', 'choices', 'options',
                                             'subject', 'grade', 'has_hint', 'prompt',
                                             'answer'), template: str = 'lavin'):
        if overlong not in OVERLONG_POLICIES:
            raise ValueError(f'overlong={overlong!r}; expected one of {OVERLONG_POLICIES}')
        if tokenizer is None:
            raise MMAUserError('TokenizeForLaVIN: tokenizer None means "the model\'s": set '
                               "model.tokenizer and build the dataset through mma's Runner "
                               '(tools/train.py, tools/test.py) or call '
                               'mma.engine.sync_data_with_model(cfg) first')
        self.tokenizer = TOKENIZERS.build(tokenizer) if isinstance(tokenizer, dict) else tokenizer
        bos, eos = self.tokenizer.bos_id, self.tokenizer.eos_id
        self._bos = [bos] if bos is not None and bos >= 0 else []
        if with_answer and (eos is None or eos < 0):
            raise ValueError(f'tokenizer {getattr(self.tokenizer, "model_path", self.tokenizer)} '
                             'has no EOS token, which training appends to every answer: set '
                             'eos_token in its tokenizer_config.json')
        self._sep = word_separator(self.tokenizer)
        self.max_len = max_len
        self.num_visual_tokens = num_visual_tokens
        self.overlong = overlong
        self.template = prompt_template(template)
        self.image_prefix = self.template.image_prefix if image_prefix is None else image_prefix
        self.text_prefix = self.template.text_prefix if text_prefix is None else text_prefix
        self._prefix_ids = {True: self.tokenizer.encode(self.image_prefix),
                            False: self.tokenizer.encode(self.text_prefix)}
        self.with_answer = with_answer
        self.meta_keys = tuple(meta_keys)

    def encode_piece(self, text: str) -> List[int]:
        """Ids of ``text`` continuing earlier text: as a new word for LaVIN's template,
        verbatim for templates that write their own spaces (no BOS/EOS)."""
        return self.tokenizer.encode((self._sep if self.template.new_word else '') + text)

    def _pieces(self, results: dict) -> Tuple[List[int], List[int], List[int], bool]:
        has_image = results.get('img_path') is not None
        qid = results.get('qid', '?')
        if not (results.get('prompt') or '').strip():
            raise MMAUserError(f'sample {qid}: empty prompt (question)')
        fmt = self.template.image_prompt if has_image else self.template.text_prompt
        prompt = self.encode_piece(fmt.format(prompt=results['prompt']))
        ans = []
        if self.with_answer:
            answer = results.get('answer')
            if not isinstance(answer, str) or not answer.strip():
                raise MMAUserError(f'sample {qid}: empty answer {answer!r}; training needs a '
                                   'target text (use with_answer=False for prediction)')
            ans = self.encode_piece(self.template.answer.format(answer=answer)) + \
                [self.tokenizer.eos_id]
        return self._prefix_ids[has_image], prompt, ans, has_image

    def measure(self, results: dict) -> Tuple[int, int, int]:
        """``(positions, prompt tokens to drop, answer tokens)`` for a sample; drop = -1 when
        even an empty prompt does not fit (or the policy is ``'skip'`` and it is over-long)."""
        return self._measure(*self._pieces(results))

    def _measure(self, prefix, prompt, ans, has_image) -> Tuple[int, int, int]:
        if self.num_visual_tokens is None and self.max_len is not None:
            raise ValueError('TokenizeForLaVIN.num_visual_tokens is not set: build the dataset '
                             "through mma's Runner (runner_type='MMARunner', tools/train.py, "
                             'tools/test.py), which takes it from the model, or call '
                             'mma.engine.sync_data_with_model(cfg) first, or set it')
        k = self.num_visual_tokens or 0  # unset without max_len (chat): only for lengths
        total = num_positions(len(self._bos) + len(prefix) + len(prompt) + len(ans), has_image, k)
        excess = total - self.max_len if self.max_len is not None else 0
        if excess <= 0:
            return total, 0, len(ans)
        if self.overlong == 'skip' or excess > len(prompt):
            return total, -1, len(ans)
        return total, excess, len(ans)

    def __call__(self, results: dict) -> dict:
        prefix, prompt, ans, has_image = self._pieces(results)  # tokenised once
        _, drop, _ = self._measure(prefix, prompt, ans, has_image)
        if drop < 0:
            raise ValueError(f'sample {results.get("qid", "?")} exceeds max_len={self.max_len} '
                             'and cannot be truncated on the prompt side; the dataset should '
                             'have filtered it (LaVINDataset applies the over-long policy)')
        inputs = pack(self._bos, prefix, prompt[drop:], ans, has_image)
        inputs['image'] = results.get('image')
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta.update(has_image=has_image, prompt_truncated=drop)
        return dict(inputs=inputs, data_samples=meta)
