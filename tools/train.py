"""Train a model from an mma config with the mmengine Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
    python tools/train.py CONFIG --check [--cfg-options k=v ...]   # validate, do not train
    torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch     # CUDA (nccl) or CPU (gloo)

See docs/training.md.
"""
import argparse
import os
import os.path as osp
import warnings

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

from mma.engine import MMARunner
from mma.engine.compat import allow_unsafe_load_from_cfg, apply_mmengine_fixes, setup_distributed
from mma.registry import explain_unknown_types


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mma model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no CKPT is given')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bf16 where the GPU supports it, else fp16 with '
                        'dynamic loss scaling; on CPU bf16 autocast')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields, e.g. train_dataloader.batch_size=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--check', action='store_true',
                        help='validate the config, the data (every qid, every image, prompt '
                        'format, tokenizer vocabulary) and the weight files, print a summary and '
                        'exit without training (exit status 1 when something is wrong)')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def setup_amp(cfg: Config) -> None:
    ow = cfg.optim_wrapper
    if not torch.cuda.is_available():  # bf16 autocast on CPU (no loss scaling needed)
        if ow.get('type') == 'SkipNonFiniteOptimWrapper':
            ow.type = 'SkipNonFiniteCPUAmpOptimWrapper'
        else:
            warnings.warn(f'--amp on CPU needs optim_wrapper.type=SkipNonFiniteOptimWrapper '
                          f"(got {ow.get('type')}); training in fp32")
        return
    if ow.get('type') in ('AmpOptimWrapper', 'SkipNonFiniteAmpOptimWrapper'):
        return
    ow.type = 'SkipNonFiniteAmpOptimWrapper'
    if torch.cuda.is_bf16_supported():
        ow.dtype = 'bfloat16'
    else:
        ow.dtype, ow.loss_scale = 'float16', 'dynamic'


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        setup_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def check_effective_batch(cfg: Config) -> None:
    if 'effective_batch' not in cfg:
        return
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    actual = (cfg.train_dataloader.batch_size * cfg.optim_wrapper.get('accumulative_counts', 1) *
              world)
    if actual != cfg.effective_batch:
        warnings.warn(f'effective batch {actual} (batch_size x accumulative_counts x {world} '
                      f'processes) differs from the recipe\'s {cfg.effective_batch}; the '
                      'learning rate in the config assumes the latter')


def main(argv=None):
    args = parse_args(argv)
    apply_mmengine_fixes()
    cfg = build_cfg(args)
    allow_unsafe_load_from_cfg(cfg)
    if args.check:
        from mma.engine.preflight import preflight
        ok, lines = preflight(cfg)
        print(f'tools/train.py --check {args.config}\n' + '\n'.join(lines))
        print('all checks passed' if ok else 'some checks FAILED (see above)')
        raise SystemExit(0 if ok else 1)
    setup_distributed(cfg, args.launcher)
    check_effective_batch(cfg)
    with explain_unknown_types():
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else MMARunner.from_cfg(cfg)
        runner.train()


if __name__ == '__main__':
    main()
