"""Inference benchmarks: ScienceQA-style evaluation the reference's way vs mma's (KV cache,
answer-aware early stop), and cached decoding of merged adapters vs the bare LLM. Figures are
printed; nothing here asserts a time."""
import time
from typing import Optional, Tuple

import torch

from mma.apps.benchmark import PeakMemory, _sync, attention_backend, build, sizes
from mma.apps.benchmark_reference import with_zero_images


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
    for slot in llm.adapter_slots('all'):
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
