"""Benchmarks: mma against a reference-style run of the same model, side by side in one process.

Reference style (mode ``reference``) reproduces what the original LaVIN code does per training
step: every sequence padded to ``max_seq_len``, text-only samples pushed through the ViT with a zero
image (and the result thrown away), eager matmul-softmax attention with a full additive mask, and
logits for every position over the whole vocabulary, in fp32 - run through mma's modules, so it
shares mma's kernels. Mode ``reference-code`` does the same with the reference code's own kernels
as well (:mod:`mma.apps.benchmark_reference`: sequence-first CLIP attention, Conv1d adapters, complex
RoPE, a per-sample insertion loop). mma mode pads to the longest sample, runs the ViT on image
samples only, uses SDPA and computes the output head only where there are labels.
Figures are printed; nothing here asserts a time.
"""
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from mma.apps.benchmark_reference import pad_text, reference_code_loss, with_zero_images
from mma.sequence import IGNORE_INDEX, num_positions

# Dense bf16 peak of one GPU, for model FLOPs utilisation.
PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}


def _medium_vision() -> dict:
    return dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_every=4,
                vision_cfg=dict(image_size=224, patch_size=14, width=1024, head_width=64,
                                layers=4, mlp_ratio=4.0, embed_dim=768))


def _routed(temperature: float) -> dict:
    return dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
                router=dict(type='ModalityRouter', temperature=temperature))


@dataclass
class Size:
    """A named benchmark size: model config and ScienceQA-like text lengths."""
    model: dict
    image_size: int
    min_len: int
    max_len: int
    max_seq_len: int = 512


def sizes() -> Dict[str, Size]:
    from mma.toy import tiny_lavin_cfg
    lavin = dict(type='LaVIN', llm_adapter=_routed(10.0), vit_adapter=_routed(10.0),
                 projector=dict(type='LaVINProjector', hidden=128))
    vit_l = dict(type='CLIPViT', model_name='ViT-L-14-quickgelu', feature_every=4)
    return {
        'tiny': Size(tiny_lavin_cfg(), 32, 40, 60, 128),
        'medium': Size(dict(lavin, llm=dict(type='LLaMA', preset='medium'),
                            vision=_medium_vision()), 224, 220, 270),
        '7b': Size(dict(lavin, llm=dict(type='LLaMA', preset='llama-7b'), vision=vit_l), 224,
                   220, 270),
        '13b': Size(dict(lavin, llm=dict(type='LLaMA', preset='llama-13b'), vision=vit_l,
                         llm_adapter=_routed(5.0), vit_adapter=_routed(5.0)), 224, 220, 270),
    }


def build(size: Size, device: str = 'cpu', frozen_dtype: Optional[torch.dtype] = None,
          seed: int = 0) -> torch.nn.Module:
    """Build the model with random weights on ``device``; frozen weights in ``frozen_dtype``."""
    import mma
    torch.manual_seed(seed)
    overrides = {} if frozen_dtype is None else dict(frozen_dtype=frozen_dtype)
    with torch.device(device):
        return mma.build_model(size.model, **overrides)


def make_batch(size: Size, batch_size: int = 4, n_images: int = 2, prompt_frac: float = 0.45,
               vocab: int = 32000, device: str = 'cpu', seed: int = 0,
               lengths: Optional[torch.Tensor] = None) -> dict:
    """A ScienceQA-like batch: text lengths in [min_len, max_len] (or ``lengths``), the first
    ``n_images`` with an image, answer tokens after the first ``prompt_frac`` of each sample."""
    g = torch.Generator().manual_seed(seed)
    if lengths is None:
        lengths = torch.randint(size.min_len, size.max_len + 1, (batch_size, ), generator=g)
    length = int(lengths.max())
    ids = torch.zeros(batch_size, length, dtype=torch.long)
    labels = torch.full((batch_size, length), IGNORE_INDEX)
    for i, n in enumerate(lengths.tolist()):
        ids[i, :n] = torch.randint(3, vocab, (n, ), generator=g)
        ids[i, 0] = 1
        start = int(n * prompt_frac)
        labels[i, start:n] = ids[i, start:n]
    has_image = torch.arange(batch_size) < n_images
    images = torch.randn(n_images, 3, size.image_size, size.image_size, generator=g)
    batch = dict(input_ids=ids, labels=labels, has_image=has_image,
                 visual_pos=torch.full((batch_size, ), 4), images=images, lengths=lengths)
    return {k: v.to(device) for k, v in batch.items()}


@contextlib.contextmanager
def attention_backend(model, backend: str):
    """Temporarily switch the LLaMA's attention to ``backend``."""
    old = model.llm.set_attn_backend(backend)
    try:
        yield
    finally:
        model.llm.set_attn_backend(old)


def mma_loss(model, batch: dict) -> torch.Tensor:
    return model(batch, mode='loss')['loss']


def reference_loss(model, batch: dict, max_seq_len: int = 512) -> torch.Tensor:
    """The loss the reference computes, the way it computes it (see module docstring)."""
    ids, labels = pad_text(batch['input_ids'], batch['labels'], model.num_visual_tokens,
                           max_seq_len)
    has_image = batch['has_image']
    visual = model.encode_images(with_zero_images(batch['images'], has_image))[has_image]
    seq = model.assemble(ids, has_image, batch['visual_pos'], visual, labels)
    with attention_backend(model, 'eager'):
        hidden = model.hidden_states(seq['embeds'])
    logits = model.llm.head(hidden).float()  # (B, T, V): every position, whole vocabulary
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), seq['labels'][:, 1:].flatten(),
                           ignore_index=IGNORE_INDEX)


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``), so that resident memory
    measured next is not hidden by memory an earlier run freed but the heap kept."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated memory (CUDA) during a block.

    On CPU the heap's free pages are released first (:func:`release_free_memory`), so the figure
    is the block's own growth whatever ran before it in the process.
    """

    def __init__(self, device: str):
        self.device = device
        self.peak = 0
        self.base = 0

    @staticmethod
    def rss() -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def __enter__(self):
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import gc
        gc.collect()
        release_free_memory()
        self.base = self.peak = self.rss()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, self.rss())
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())
        return False

    @property
    def used(self) -> int:
        """Bytes above the level at entry (CPU) or peak allocated bytes (CUDA)."""
        return self.peak - self.base


def _sync(device: str):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_train_step(model, batch: dict, loss_fn, steps: int = 3, warmup: int = 1,
                    amp_dtype: Optional[torch.dtype] = None) -> dict:
    """Median seconds of forward + backward + AdamW step, the loss, and peak memory."""
    device = batch['input_ids'].device.type
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.02)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k}
    model.train()
    times, loss, mem = [], None, None
    for i in range(warmup + steps):
        meter = PeakMemory(device) if i == warmup else contextlib.nullcontext()
        with meter:
            _sync(device)
            t0 = time.perf_counter()
            if device == 'cuda' and hasattr(torch.compiler, 'cudagraph_mark_step_begin'):
                torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA-graph trees
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                out = loss_fn(model, batch)
            out.backward()
            opt.step()
            _sync(device)
            times.append(time.perf_counter() - t0)
        if i == warmup:
            mem = meter.used
        if i == 0:
            loss = out.item()
    model.load_state_dict(state)  # leave the weights as found
    times = sorted(times[warmup:])
    return dict(seconds=times[len(times) // 2], loss=loss, peak_bytes=mem)


def train_flops(model, batch: dict, real_tokens: int, label_tokens: int) -> float:
    """Model FLOPs of one frozen-backbone training step: 4·N per token through frozen weights
    (forward + input gradients; no weight gradients), plus attention and the output head."""
    llm = model.llm
    head = llm.vocab_size * llm.dim
    frozen = sum(v.numel() for v in llm.base_state_dict().values())
    block_params = frozen - 2 * head  # the token embedding and the head are no blocks
    d, n_layers = llm.dim, llm.num_layers
    t = batch['input_ids'].shape[1]
    flops = 4 * block_params * real_tokens
    flops += 4 * 2 * 2 * n_layers * d * t * real_tokens / 2  # causal QK^T and AV, fwd + bwd
    flops += 4 * head * label_tokens
    if model.vision is not None and batch['images'] is not None:
        vit = sum(p.numel() for p in model.vision.parameters() if not p.requires_grad)
        n_tok = (model.vision.tower.positional_embedding.shape[0])
        flops += 4 * vit * n_tok * batch['images'].shape[0]
    return float(flops)


def run_train_benchmark(size_name: str = 'medium', device: str = 'cpu', batch_size: int = 4,
                        n_images: int = 2, steps: int = 3, warmup: int = 1,
                        amp: Optional[str] = None, frozen_dtype: Optional[str] = None,
                        modes: List[str] = ('reference-code', 'reference', 'mma'),
                        gpu: str = 'H100', compile: Optional[str] = None,
                        reference_amp: Optional[bool] = None) -> dict:
    """Time reference-style and mma training steps on the same model and batch (mma mode last:
    ``compile`` compiles its LLaMA blocks). Modes: ``reference-code``, ``reference``, ``mma``.
    ``amp`` autocasts mma mode; the reference modes too when ``reference_amp`` (default: on CUDA,
    where the reference trains in mixed precision; on CPU the reference figure is fp32)."""
    unknown = set(modes) - {'reference-code', 'reference', 'mma'}
    if unknown:
        raise ValueError(f'unknown benchmark modes {sorted(unknown)}; expected reference-code, '
                         'reference, mma')
    size = sizes()[size_name]
    amp_dtype = getattr(torch, amp) if amp else None
    fdt = getattr(torch, frozen_dtype) if frozen_dtype else None
    model = build(size, device, fdt)
    vocab = model.llm.vocab_size
    batch = make_batch(size, batch_size, n_images, vocab=vocab, device=device)
    real = int(num_positions(batch['lengths'], batch['has_image'], model.num_visual_tokens).sum())
    labels = int((batch['labels'] != IGNORE_INDEX).sum())
    if reference_amp is None:
        reference_amp = device.startswith('cuda')
    ref_amp = amp_dtype if reference_amp else None
    results = {}
    for mode in modes:
        if mode in ('reference', 'reference-code'):
            loss = reference_loss if mode == 'reference' else reference_code_loss
            fn = lambda m, b, f=loss: f(m, b, size.max_seq_len)  # noqa: E731
            r = time_train_step(model, batch, fn, steps, warmup, ref_amp)
            padded = batch_size * size.max_seq_len
        else:
            if compile:  # 'default' or 'reduce-overhead' (CUDA graphs; static shapes)
                model.llm.compile_blocks(mode=compile, dynamic=compile != 'reduce-overhead')
            r = time_train_step(model, batch, mma_loss, steps, warmup, amp_dtype)
            padded = batch_size * num_positions(batch['input_ids'].shape[1], True,
                                                model.num_visual_tokens)
        r['samples_per_s'] = batch_size / r['seconds']
        r['real_tokens_per_s'] = real / r['seconds']
        r['padded_fraction'] = 1 - real / padded
        if device.startswith('cuda'):
            r['mfu'] = train_flops(model, batch, real, labels) / r['seconds'] / (
                PEAK_TFLOPS.get(gpu, 989.0) * 1e12)
        results[mode] = r
    return results


# ------------------------------------------------------------------------------------------------
# Evaluation and decoding
