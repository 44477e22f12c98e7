"""Measure host memory for loading a generated ~1 GB Meta LLaMA checkpoint into mma.

    python tools/measure_load_memory.py [--workdir /tmp/mma_load_mem] [--layers 8]

Writes an fp16 Meta folder (1 shard and 2 shards) with random weights, then loads it in a fresh
process per case (model built on the meta device, ``LLaMA.load_pretrained``) and reports, against
the checkpoint size: the process RSS before loading (imports), the peak RSS while loading
(``VmHWM``), and the peak anonymous and file-backed RSS sampled every millisecond. Memory-mapped
shard pages are file-backed and clean (the kernel can drop them); anonymous memory is what the
loader allocated.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')

MiB = 2**20


def _status() -> dict:
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile'):
                out[k] = int(v.split()[0]) * 1024
    return out


def _child(folder: str, dtype: str, touch: bool) -> dict:
    import torch

    from mma.llms import LLaMA, read_llama_args
    kw = read_llama_args(folder)
    with torch.device('meta'):
        model = LLaMA(**kw)
    model.to(getattr(torch, dtype))
    before = _status()
    peaks = {'RssAnon': 0, 'RssFile': 0, 'VmRSS': 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            s = _status()
            for k in peaks:
                peaks[k] = max(peaks[k], s[k])
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.time()
    model.load_pretrained(folder)
    if touch:  # read every weight once, as a forward pass would
        total = sum(float(c.float().sum()) for p in model.parameters()
                    for c in p.detach().flatten().split(2**20))  # 1M-element temporaries
        assert total == total
    seconds = time.time() - t0
    stop.set()
    th.join()
    after = _status()
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return dict(before=before, after=after, peaks=peaks, seconds=seconds, model_bytes=nbytes)


def _generate(workdir: str, layers: int) -> dict:
    import torch

    from mma.llms import LLaMA, save_meta_checkpoint
    from mma.llms.checkpoints import meta_params
    cfg = dict(dim=2048, n_layers=layers, n_heads=16, vocab_size=32000, multiple_of=256)
    with torch.device('meta'):
        args = LLaMA(**cfg).args
        shapes = {k: v.shape for k, v in LLaMA(**cfg).state_dict().items()}
    folders = {}
    for shards in (1, 2):
        folder = os.path.join(workdir, f'{shards}shard')
        folders[shards] = folder
        if os.path.isfile(os.path.join(folder, f'consolidated.{shards - 1:02d}.pth')):
            continue
        gen = torch.Generator().manual_seed(0)
        sd = {k: (torch.randn(s, generator=gen) * 0.02).half() for k, s in shapes.items()}
        sd['rope.freqs'] = torch.ones(args.head_dim // 2).half()
        save_meta_checkpoint(sd, folder, meta_params(args), shards)
        del sd
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default='/tmp/mma_load_mem')
    parser.add_argument('--layers', type=int, default=8)
    parser.add_argument('--child', nargs=3, metavar=('FOLDER', 'DTYPE', 'TOUCH'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.child[2] == '1')))
        return
    folders = _generate(args.workdir, args.layers)
    rows = []
    for shards, dtype, touch in ((1, 'float16', 0), (1, 'float16', 1), (2, 'float16', 1),
                                 (1, 'float32', 1), (2, 'float32', 1), (1, 'bfloat16', 1)):
        folder = folders[shards]
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        out = subprocess.run([sys.executable, __file__, '--child', folder, dtype, str(touch)],
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=ROOT))
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = r['before']['VmRSS']
        rows.append((shards, dtype, touch, size, r['model_bytes'], base, r['after']['VmHWM'],
                     r['peaks']['RssAnon'] - r['before']['RssAnon'],
                     r['peaks']['RssFile'] - r['before']['RssFile'], r['seconds']))
    print('| shards | target dtype | weights read after load | checkpoint | model (target dtype) '
          '| RSS before | peak RSS (VmHWM) | peak RSS - before | peak anon. increase '
          '| peak file-backed increase | seconds |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for s, d, t, size, mb, base, hwm, anon, file, sec in rows:
        print(f'| {s} | {d} | {"yes" if t else "no"} | {size / MiB:.0f} MiB | {mb / MiB:.0f} MiB '
              f'| {base / MiB:.0f} MiB | {hwm / MiB:.0f} MiB | {(hwm - base) / MiB:.0f} MiB '
              f'({(hwm - base) / mb:.2f}x model) | {anon / MiB:.0f} MiB | {file / MiB:.0f} MiB '
              f'| {sec:.1f} |')


if __name__ == '__main__':
    main()
