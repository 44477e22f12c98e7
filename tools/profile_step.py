#!/usr/bin/env python
"""Profile one mma training step (forward + backward + AdamW) with torch.profiler and print where
the time goes: the top kernels/ops and the device-busy fraction of the step's wall time.

    python tools/profile_step.py --size medium                       # CPU
    python tools/profile_step.py --size 7b --device cuda --amp bfloat16 --frozen-dtype bfloat16
"""
import argparse
import time



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', default='tiny')
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', default=None)
    p.add_argument('--frozen-dtype', default=None)
    p.add_argument('--compile', action='store_true')
    p.add_argument('--rows', type=int, default=20)
    args = p.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mma.apps import benchmark as bm
    torch.backends.mha.set_fastpath_enabled(False)
    size = bm.sizes()[args.size]
    fdt = getattr(torch, args.frozen_dtype) if args.frozen_dtype else None
    model = bm.build(size, args.device, fdt).train()
    batch = bm.make_batch(size, vocab=model.llm.vocab_size, device=args.device)
    if args.compile:
        model.llm.compile_blocks()
    amp = getattr(torch, args.amp) if args.amp else None

    def step():
        with torch.autocast(args.device, dtype=amp or torch.float32, enabled=amp is not None):
            loss = bm.mma_loss(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    cuda = args.device.startswith('cuda')
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    bm._sync(args.device)
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        step()
        bm._sync(args.device)
    wall = time.perf_counter() - t0
    key = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    if cuda:
        busy = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6
        print(f'wall {wall * 1e3:.1f} ms (profiled), device busy {busy * 1e3:.1f} ms '
              f'({100 * busy / wall:.0f}%)')


if __name__ == '__main__':
    main()
