#!/usr/bin/env python
"""Benchmark mma against reference-style runs of the same model, in one process.

Examples:
    python tools/benchmark.py --size medium                      # CPU, fp32, train step
    python tools/benchmark.py --what decode --size medium        # bare / unmerged / merged decode
    python tools/benchmark.py --what eval                        # ScienceQA-style evaluation of
                                                                 # the trained demo model
    python tools/benchmark.py --preset gpu-7b                    # H100/H200: LaVIN-7B shapes
    python tools/benchmark.py --what pack --batch-size 16        # packed vs padded train step
"""
import argparse
import json


PRESETS = {
    'gpu-7b': dict(what='train,decode', size='7b', device='cuda', amp='bfloat16',
                   frozen_dtype='bfloat16', steps=5, warmup=2,
                   modes='reference-code,reference,mma'),
    # mma's training step with the LLaMA blocks compiled into CUDA graphs (static shapes)
    'gpu-7b-graphs': dict(what='train', size='7b', device='cuda', amp='bfloat16',
                          frozen_dtype='bfloat16', steps=6, warmup=3, modes='mma',
                          compile='reduce-overhead'),
    # the recipe's 4 x accumulation 4 as one batch of 16 (the token-mean loss makes the optimizer
    # step the same): larger matrix products per launch. Not yet run on a GPU.
    'gpu-7b-b16-graphs': dict(what='train', size='7b', device='cuda', amp='bfloat16',
                              frozen_dtype='bfloat16', steps=6, warmup=3, modes='mma',
                              compile='reduce-overhead', batch_size=16, n_images=8),
}
DEMO = 'work_dirs/lavin_tiny_demo'


def fmt_bytes(n):
    return f'{n / 2**30:.2f} GiB' if n is not None else 'n/a'


def train(args, bm):
    print(f'train step: size={args.size} batch={args.batch_size} images={args.n_images} '
          f'amp={args.amp} reference_amp={args.reference_amp} '
          f'frozen_dtype={args.frozen_dtype} compile={args.compile}', flush=True)
    res = bm.run_train_benchmark(args.size, args.device, args.batch_size, args.n_images,
                                 args.steps, args.warmup, args.amp, args.frozen_dtype,
                                 args.modes.split(','), args.gpu, args.compile,
                                 True if args.reference_amp else None)
    print(f'{"mode":14s} {"s/step":>8s} {"samples/s":>10s} {"real tok/s":>11s} '
          f'{"pad frac":>8s} {"peak mem":>10s} {"loss":>8s} {"MFU":>6s}')
    for mode, r in res.items():
        mfu = f'{100 * r["mfu"]:.1f}%' if 'mfu' in r else '-'
        print(f'{mode:14s} {r["seconds"]:8.3f} {r["samples_per_s"]:10.2f} '
              f'{r["real_tokens_per_s"]:11.1f} {r["padded_fraction"]:8.2f} '
              f'{fmt_bytes(r["peak_bytes"]):>10s} {r["loss"]:8.4f} {mfu:>6s}')
    new = res.get('mma')
    for name in ('reference-code', 'reference'):
        if name in res and new is not None:
            ref = res[name]
            print(f'speed-up ({name} / mma time): {ref["seconds"] / new["seconds"]:.2f}x; '
                  f'peak memory ratio (mma / {name}): {new["peak_bytes"] / ref["peak_bytes"]:.2f}')
    return res


def pack(args):
    from mma.apps.benchmark_packing import run_packing_benchmark
    print(f'packed vs padded train step: size={args.size} batch={args.batch_size} '
          f'max_tokens={args.max_tokens} (ScienceQA-like lengths)', flush=True)
    res = run_packing_benchmark(args.size, args.device, args.batch_size, args.max_tokens,
                                args.steps, args.warmup, mask=args.pack_mask, amp=args.amp)
    print(f'{"mode":8s} {"rows":>5s} {"s/step":>8s} {"real tok/s":>11s} {"pad frac":>8s} '
          f'{"peak mem":>10s} {"loss":>8s}')
    for mode, r in res.items():
        print(f'{mode:8s} {r["rows"]:5d} {r["seconds"]:8.3f} {r["real_tokens_per_s"]:11.1f} '
              f'{r["padded_fraction"]:8.2f} {fmt_bytes(r["peak_bytes"]):>10s} {r["loss"]:8.4f}')
    pad, pk = res['padded'], res['packed']
    removed = 1 - pk['padded_fraction'] / pad['padded_fraction'] if pad['padded_fraction'] else 0
    ratio = pk['real_tokens_per_s'] / pad['real_tokens_per_s']
    print(f'packed / padded real tokens/s: {ratio:.2f}x; padding removed: {100 * removed:.0f}% ({pad["padded_fraction"]:.2f} -> '
          f'{pk["padded_fraction"]:.2f} of the positions)')
    return res


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--preset', choices=sorted(PRESETS), help='a named set of the options below')
    p.add_argument('--what', default='train', help='comma-separated: train, eval, decode, pack')
    p.add_argument('--eval-config', default='configs/lavin_tiny_demo.py')
    p.add_argument('--eval-checkpoint', default=DEMO + '/lavin/epoch_4.pth',
                   help='adapter checkpoint for --what eval (default: the demo\'s, made by '
                   'tools/demo.py)')
    p.add_argument('--eval-assets', default=DEMO + '/assets')
    p.add_argument('--questions', type=int, default=64)
    p.add_argument('--size', default='medium', choices=['tiny', 'medium', '7b', '13b'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--n-images', type=int, default=2)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--amp', default=None, help='autocast dtype for mma mode, e.g. bfloat16')
    p.add_argument('--reference-amp', action='store_true',
                   help='autocast the reference modes with --amp as well (always so on CUDA)')
    p.add_argument('--frozen-dtype', default=None, help='store frozen weights in this dtype')
    p.add_argument('--modes', default='reference-code,reference,mma',
                   help='comma-separated train-step modes: reference-code (the reference code\'s '
                   'computation and kernels), reference (its computation on mma\'s kernels), mma')
    p.add_argument('--gpu', default='H100', help='peak-FLOPs table key for MFU')
    p.add_argument('--compile', nargs='?', const='default', default=None,
                   choices=['default', 'reduce-overhead', 'max-autotune-no-cudagraphs'],
                   help='torch.compile the LLaMA blocks in mma mode (reduce-overhead: CUDA graphs)')
    p.add_argument('--max-tokens', type=int, default=512, help='positions per packed row (pack)')
    p.add_argument('--pack-mask', default='auto', choices=['auto', 'dense', 'flex'],
                   help='packed attention mask: auto (flex on CUDA, SDPA boolean elsewhere)')
    p.add_argument('--json', default=None, help='also write the results here')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.preset:
        for k, v in PRESETS[args.preset].items():
            setattr(args, k, v)
    import torch
    from mma.apps import benchmark as bm
    from mma.apps import benchmark_inference as bi
    torch.backends.mha.set_fastpath_enabled(False)
    what = args.what.split(',')
    print(f'device={args.device} threads={torch.get_num_threads()}', flush=True)
    results = {}
    if 'train' in what:
        results['train'] = train(args, bm)
    if 'pack' in what:
        results['pack'] = pack(args)
    if 'decode' in what:
        r = bi.run_decode_benchmark(args.size, args.device, args.batch_size,
                                    frozen_dtype=args.frozen_dtype)
        results['decode'] = r
        print(f'decode tokens/s ({args.size}, batch {args.batch_size}): ' +
              ', '.join(f'{k} {r[k]:.1f}' for k in ('bare', 'unmerged', 'merged')))
        print(f'  largest logit difference from the unmerged model: merged '
              f'{r["merged_max_logit_diff"]:.2e}, bare {r["bare_max_logit_diff"]:.2e}')
        print(f'  merged / bare: {r["merged"] / r["bare"]:.3f}; unmerged / bare: '
              f'{r["unmerged"] / r["bare"]:.3f}')
    if 'eval' in what:
        r = bi.run_eval_benchmark(args.eval_config, args.eval_checkpoint, args.eval_assets,
                                  args.questions, device=args.device)
        results['eval'] = r
        print(f'ScienceQA-style evaluation, {r["questions"]} questions: reference-style '
              f'{r["reference_seconds"]:.2f} s ({r["reference_tokens_per_question"]:.1f} '
              f'tokens/question), mma {r["mma_seconds"]:.2f} s '
              f'({r["mma_tokens_per_question"]:.1f} tokens/question): {r["speedup"]:.1f}x; '
              f'same parsed answers: {100 * r["same_answers"]:.1f}%')
        print(f'  questions/s: reference-style {r["reference_questions_per_s"]:.1f}, mma '
              f'{r["mma_questions_per_s"]:.1f}; peak memory: reference-style '
              f'{fmt_bytes(r["reference_peak_bytes"])}, mma {fmt_bytes(r["mma_peak_bytes"])}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)


if __name__ == '__main__':
    main()
