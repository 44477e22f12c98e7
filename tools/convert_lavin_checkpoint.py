"""Convert a checkpoint of the original LaVIN code into an mma adapter checkpoint.

    python tools/convert_lavin_checkpoint.py checkpoint-19.pth lavin_7b_sqa_adapters.pth \
        --config configs/lavin_7b_sqa_real_weights.py

IN is a reference training checkpoint (``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``,
reference names, ``module.`` prefixes allowed). OUT is a flat ``{mma name: tensor}`` dict, written
with ``torch.save`` or, for a ``.safetensors`` path, as safetensors. CONFIG is the mma config of
the model the adapters are for: its adapter slots name the tensors (the model is built on the meta
device, no weights read). Use OUT as that config's ``adapter_checkpoint`` (a reference file also
works there directly).
"""
import argparse
import os

import torch

from mma.builder import build_model, model_config
from mma.models.adapter_checkpoint import read_adapter_state_dict


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='reference LaVIN checkpoint-N.pth')
    parser.add_argument('dst', help='output mma adapter checkpoint (.pth or .safetensors)')
    parser.add_argument('--config', required=True,
                        help='mma config of the model the adapters are for')
    args = parser.parse_args(argv)
    with torch.device('meta'):
        model = build_model(model_config(args.config))
    sd = read_adapter_state_dict(args.src, model)
    sd = {k: v.contiguous() for k, v in sd.items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    if args.dst.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(sd, args.dst, metadata={'format': 'pt', 'source': os.path.basename(args.src)})
    else:
        torch.save(sd, args.dst)
    n = sum(v.numel() for v in sd.values())
    groups = {}
    for k in sd:
        top = k.split('.')[0]
        groups[top] = groups.get(top, 0) + 1
    print(f'wrote {args.dst}: {len(sd)} tensors, {n:,} parameters '
          f'({", ".join(f"{g}: {c}" for g, c in sorted(groups.items()))})')


if __name__ == '__main__':
    main()
