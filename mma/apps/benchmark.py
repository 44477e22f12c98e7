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
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from mma.apps.benchmark_reference import pad_text, reference_code_loss, with_zero_images
from mma.models.lavin import IGNORE_INDEX

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
    from mma.testing import tiny_lavin_cfg
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
               vocab: int = 32000, device: str = 'cpu', seed: int = 0) -> dict:
    """A ScienceQA-like batch: lengths in [min_len, max_len], the first ``n_images`` with an
    image, answer tokens after the first ``prompt_frac`` of each sample."""
    g = torch.Generator().manual_seed(seed)
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
    real = int(batch['lengths'].sum()) + model.num_visual_tokens * n_images + batch_size
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
            padded = batch_size * (1 + batch['input_ids'].shape[1] + model.num_visual_tokens)
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


@torch.inference_mode()
def reference_generate(model, inputs: dict, max_gen_len: int = 64,
                       max_seq_len: int = 512) -> dict:
    """Greedy decoding the way the reference evaluates: every sample through the ViT (zero image
    for text-only ones), eager attention, prefill only up to the shortest prompt and then one
    position per step (prompt tokens forced while a row is still inside its prompt), and
    ``max_gen_len`` new tokens after the longest prompt with no early stop. Rotary positions are
    right (the reference's cached off-by-one is not reproduced). Returns tokens and step count."""
    from mma.routers.routing import RoutingContext
    llm = model.llm
    b = inputs['input_ids'].shape[0]
    has_image = inputs['has_image'].bool()
    visual = None
    if model.vision is not None and inputs.get('images') is not None:
        visual = model.encode_images(with_zero_images(inputs['images'], has_image))[has_image]
    seq = model.assemble(inputs['input_ids'], has_image, inputs.get('visual_pos'), visual)
    embeds, lengths = seq['embeds'], model.prompt_lengths(inputs)
    start, total = int(lengths.min()), min(max_seq_len, int(lengths.max()) + max_gen_len)
    cache = llm.new_cache(b, total, dtype=embeds.dtype, device=embeds.device)
    ctx = RoutingContext(token_index=embeds.new_zeros(b, dtype=torch.long), cache={})
    tokens = [[] for _ in range(b)]
    with attention_backend(model, 'eager'):
        hidden = llm(embeds[:, :start], mask=model.attention_mask(start, embeds.device), ctx=ctx,
                     cache=cache)
        logits = llm.head(hidden[:, -1]).float()
        for cur in range(start, total):
            nxt = logits.argmax(-1)
            in_prompt = cur < lengths
            for i in (~in_prompt).nonzero().flatten().tolist():
                tokens[i].append(int(nxt[i]))
            if cur == total - 1:
                break
            prompt_emb = embeds[:, min(cur, embeds.shape[1] - 1)]
            emb = torch.where(in_prompt[:, None], prompt_emb, llm.embed(nxt))
            mask = torch.ones(1, 1, 1, cur + 1, dtype=torch.bool, device=emb.device)
            mask[..., 0] = False  # the modality token is seen only by itself
            pos = torch.full((b, 1), cur, device=emb.device)
            hidden = llm(emb[:, None], pos, mask, ctx, cache)
            logits = llm.head(hidden[:, -1]).float()
    return dict(tokens=tokens, steps=total - start)


def time_call(fn, device: str, repeats: int = 1):
    """(median seconds, last result) of ``fn()``."""
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], out


def run_eval_benchmark(config: str, checkpoint: Optional[str], assets: Optional[str] = None,
                       n_questions: int = 64, batch_size: int = 16, device: str = 'cpu') -> dict:
    """ScienceQA-style evaluation of a trained model: reference-style decoding (64 tokens, no
    early stop) vs mma's (KV cache, answer-aware early stop) on the same questions."""
    from mmengine.config import Config

    import mma
    from mma.evaluation.scienceqa_metric import parse_answer
    from mma.registry import DATASETS
    cfg = Config.fromfile(config)
    if assets is not None:
        from mma.apps.demo.run import set_asset_paths
        set_asset_paths(cfg, assets)
    model = mma.load_model(cfg, checkpoint, device=device)
    from mmengine.registry import init_default_scope
    init_default_scope('mma')
    from mma.engine.runner import sync_data_with_model
    sync_data_with_model(cfg, model)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    from mma.datasets.collate import mma_collate
    batches = []
    for s in range(0, min(n_questions, len(dataset)), batch_size):
        items = [dataset[i] for i in range(s, min(s + batch_size, n_questions, len(dataset)))]
        batch = mma_collate(items)
        batch['inputs'] = {k: v.to(device) if torch.is_tensor(v) else v
                           for k, v in batch['inputs'].items()}
        batches.append(batch)
    tok = model.tokenizer

    def run_reference():
        return [reference_generate(model, b['inputs']) for b in batches]

    def run_mma():
        return [model.generate(b['inputs']) for b in batches]

    with PeakMemory(device) as ref_mem:
        ref_s, ref_out = time_call(run_reference, device)
    with PeakMemory(device) as new_mem:
        new_s, new_out = time_call(run_mma, device)
    agree, n, ref_tokens, new_tokens = 0, 0, 0, 0
    for b, r, o in zip(batches, ref_out, new_out):
        for i, s in enumerate(b['data_samples']):
            k = len(s['choices'])
            agree += parse_answer(tok.decode(r['tokens'][i]), k) == parse_answer(o.texts[i], k)
            n += 1
            ref_tokens += len(r['tokens'][i])
        new_tokens += sum(o.num_generated)
    return dict(questions=n, reference_seconds=ref_s, mma_seconds=new_s,
                speedup=ref_s / new_s, same_answers=agree / max(n, 1),
                reference_questions_per_s=n / ref_s, mma_questions_per_s=n / new_s,
                reference_tokens_per_question=ref_tokens / max(n, 1),
                mma_tokens_per_question=new_tokens / max(n, 1),
                reference_peak_bytes=ref_mem.used, mma_peak_bytes=new_mem.used)


def _bare_llm(model):
    """A copy of the LLM without adapters sharing the frozen tensors."""
    from mma.models.merge import share_tensors_copy
    llm = share_tensors_copy(model.llm)
    for slot in llm.adapter_slots('block'):
        slot.remove()
    return llm


@torch.inference_mode()
def decode_tokens_per_s(llm, batch_size: int, prompt_len: int, new_tokens: int, device: str,
                        first: Optional[torch.Tensor] = None) -> Tuple[float, torch.Tensor]:
    """Greedy cached decoding throughput (generated tokens per second, prefill excluded) from a
    random prompt whose first position is ``first`` (the modality token; random if None), and
    the ``(batch_size, new_tokens, V)`` logits of the generated tokens."""
    from mma.models.generation import decode_one_token, prefill, routing_context
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(batch_size, prompt_len, llm.dim, generator=g).to(device, llm.dtype)
    if first is not None:
        embeds[:, 0] = first.to(embeds.dtype)
    pad = torch.zeros(batch_size, dtype=torch.long, device=device)
    cache = llm.new_cache(batch_size, prompt_len + new_tokens + 1, dtype=embeds.dtype,
                          device=device)
    ctx = routing_context(pad)
    logits = prefill(llm, embeds, pad, cache, ctx)
    history = []
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        history.append(logits)
        logits = decode_one_token(llm, logits.argmax(-1), pad, cache, ctx)
    _sync(device)
    rate = batch_size * new_tokens / (time.perf_counter() - t0)
    return rate, torch.stack(history, 1).float().cpu()


def run_decode_benchmark(size_name: str = 'medium', device: str = 'cpu', batch_size: int = 4,
                         prompt_len: int = 128, new_tokens: int = 64,
                         frozen_dtype: Optional[str] = None, repeats: int = 3) -> dict:
    """Decode throughput of the bare LLaMA, the model with unmerged routed adapters, and the
    model with adapters merged (text modality), and the largest logit difference of the merged
    and of the bare model from the unmerged one over the decoded tokens (merged: rounding only)."""
    from mma.models.merge import merge_lavin
    size = sizes()[size_name]
    fdt = getattr(torch, frozen_dtype) if frozen_dtype else None
    model = build(size, device, fdt).eval()
    with torch.no_grad():  # non-zero adapters, as after training
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02)
    if fdt is not None:
        model.to(fdt)
    variants = {'bare': _bare_llm(model), 'unmerged': model.llm,
                'merged': merge_lavin(model, 'text').llm}
    # every prompt starts with the text modality token, as text-only prompts do in LaVIN: the
    # unmerged routers then pick the weights that the merge folded in
    first = model.modality_embedding.weight[0].detach()
    out, logits = {}, {}
    for name, llm in variants.items():
        runs = [decode_tokens_per_s(llm, batch_size, prompt_len, new_tokens, device, first)
                for _ in range(repeats)]
        out[name] = sorted(rate for rate, _ in runs)[len(runs) // 2]
        logits[name] = runs[0][1]
    # the comparison is between equivalent models: merged adapters give the unmerged logits
    for name in ('merged', 'bare'):
        out[f'{name}_max_logit_diff'] = float((logits[name] - logits['unmerged']).abs().max())
    return out
