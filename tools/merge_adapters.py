"""Fold a LaVIN model's adapters into its frozen weights, one merged model per modality.

    python tools/merge_adapters.py configs/lavin_7b_sqa_real_weights.py --out work_dirs/merged \
        [--adapter-checkpoint lavin_7b_sqa_adapters.pth] [--modality image text] [--dtype fp16]

Reads the base weights and the adapter checkpoint named in the config (or on the command line),
merges (see :mod:`mma.models.merge`: LLM adapters and non-routed ViT adapters are folded; routed
ViT adapters stay) and writes ``merged_{image,text}.safetensors`` holding the full merged model
state dict. Load one with ``mma.load_model(config, path)`` (or ``mma.load_merged_lavin(path)``).
"""
import argparse
import json
import os

import torch

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def main(argv=None) -> None:
    from mmengine.config import Config, DictAction

    import mma
    from mma.models.merge import MODALITIES, adapter_names, merge_lavin
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--adapter-checkpoint', help='overrides the config field')
    parser.add_argument('--modality', nargs='+', default=list(MODALITIES),
                        choices=list(MODALITIES))
    parser.add_argument('--dtype', default='fp32', choices=list(DTYPES),
                        help='dtype of the loaded and written weights (merging runs in fp64)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if args.adapter_checkpoint:
        model_cfg['adapter_checkpoint'] = args.adapter_checkpoint
    if not model_cfg.get('adapter_checkpoint'):
        raise ValueError('merge_adapters: no adapter checkpoint (set adapter_checkpoint in the '
                         'config or pass --adapter-checkpoint)')
    model = mma.load_model(model_cfg, dtype=DTYPES[args.dtype],
                           allow_unsafe=cfg.get('allow_unsafe_load', False))
    os.makedirs(args.out, exist_ok=True)
    from safetensors.torch import save_file
    for modality in args.modality:
        merged = merge_lavin(model, modality)
        sd = {k: v.contiguous() for k, v in merged.state_dict().items()}
        path = os.path.join(args.out, f'merged_{modality}.safetensors')
        save_file(sd, path, metadata={'format': 'pt', 'mma_merged_modality': modality,
                                      'mma_model_config': json.dumps(model_cfg, default=str)})
        kept = adapter_names(merged)
        print(f'wrote {path}: {len(sd)} tensors; adapters kept unmerged: '
              f'{len(kept)}{" (routed ViT adapters)" if kept else ""}')
        del merged, sd


if __name__ == '__main__':
    main()
