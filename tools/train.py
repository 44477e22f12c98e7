"""Train a model from an mma config with the mmengine Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT] | --overwrite] [--amp]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm] [--debug]
    python tools/train.py CONFIG --check [--cfg-options k=v ...]   # validate, do not train
    torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch     # CUDA (nccl) or CPU (gloo)

A data, file or config error prints one paragraph (what, where, what to do) and exits with
status 2; --debug (or MMA_DEBUG=1) shows the traceback. See docs/training.md.
"""
import argparse
import glob
import os
import os.path as osp
import warnings

import torch
from mmengine.config import Config, DictAction

from mma.engine import MMARunner
from mma.engine.distributed import setup_distributed
from mma.engine.mmengine_fixes import apply_mmengine_fixes
from mma.engine.runner import sync_data_with_model
from mma.errors import MMAUserError, report_user_errors
from mma.registry import RUNNERS, explain_unknown_types


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mma model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the checkpoint the work dir\'s '
                        'last_checkpoint names when no CKPT is given (an error when there is none)')
    parser.add_argument('--overwrite', action='store_true',
                        help='start a new run in a work dir that already holds checkpoints '
                        '(they are replaced as the new run saves); without it, or --resume, '
                        'the tool refuses')
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
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of a data or config error (also '
                        'MMA_DEBUG=1)')
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
    if args.resume is not None and not args.check:
        cfg.resume, cfg.load_from = True, resume_checkpoint(cfg.work_dir, args.resume)
    return cfg


def existing_checkpoints(work_dir: str) -> list:
    """Checkpoints (and the ``last_checkpoint`` pointer) a new run would overwrite."""
    found = [p for pattern in ('last_checkpoint', 'epoch_*.pth', 'iter_*.pth')
             for p in glob.glob(osp.join(glob.escape(work_dir), pattern))]
    return sorted(osp.basename(p) for p in found)


def resume_checkpoint(work_dir: str, resume: str) -> str:
    """The file ``--resume`` continues from: ``resume`` itself, or (``'auto'``) the one that
    ``work_dir/last_checkpoint`` names. Asking to resume and finding nothing is an error: a
    silent fresh start would overwrite the checkpoints of the run meant to continue."""
    if resume != 'auto':
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume {resume}: no such checkpoint file')
        return resume
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise MMAUserError(f'--resume: nothing to resume in work dir {work_dir}: {pointer} does '
                           'not exist (no checkpoint was saved there). Drop --resume to start '
                           'a new run, pass --resume FILE, or check --work-dir')
    with open(pointer, encoding='utf-8', errors='replace') as f:
        target = f.read().strip()
    if not target or not osp.isfile(target):
        what = 'is empty' if not target else f'names {target[:200]!r}, which is not a file'
        # the checkpoint files only: the pointer itself is no checkpoint to resume from
        ckpts = [osp.join(work_dir, name) for name in existing_checkpoints(work_dir)
                 if name != 'last_checkpoint']
        todo = f'Pass --resume FILE with one of {ckpts} (or fix the file)' if ckpts else \
            ('No checkpoint file (epoch_*.pth, iter_*.pth) is there either: drop --resume to '
             'start a new run, or pass --resume FILE with a checkpoint saved elsewhere')
        raise MMAUserError(f'--resume: {pointer} {what}; it should hold the path of the last '
                           f'saved checkpoint. {todo}')
    return target


def check_work_dir(work_dir: str, overwrite: bool) -> None:
    """Refuse to start a new run over a work dir's checkpoints unless ``overwrite``."""
    found = existing_checkpoints(work_dir)
    if not found:
        return
    if not overwrite:
        raise MMAUserError(f'work dir {work_dir} already holds checkpoints of a run ({found[:5]}'
                           f'{" ..." if len(found) > 5 else ""}); a new run would overwrite '
                           'them. Pass --resume to continue that run, --overwrite to start again '
                           'and replace them, or another --work-dir')
    warnings.warn(f'--overwrite: a new run in {work_dir}; its checkpoints {found[:5]} are '
                  'replaced as this run saves (last_checkpoint removed now, so that --resume '
                  'never continues the old run)')
    try:  # every process of a launch may get here (slurm sets RANK later)
        os.remove(osp.join(work_dir, 'last_checkpoint'))
    except FileNotFoundError:
        pass


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
    with report_user_errors('tools/train.py', args.debug):
        train(args)


def train(args) -> None:
    cfg = build_cfg(args)
    apply_mmengine_fixes(allow_unsafe=cfg.get('allow_unsafe_load', False))
    if args.check:
        from mma.engine.preflight import preflight
        ok, lines = preflight(cfg)
        print(f'tools/train.py --check {args.config}\n' + '\n'.join(lines))
        print('all checks passed' if ok else 'some checks FAILED (see above)')
        raise SystemExit(0 if ok else 1)
    if args.resume is None:
        check_work_dir(cfg.work_dir, args.overwrite)
    setup_distributed(cfg, args.launcher)
    check_effective_batch(cfg)
    with explain_unknown_types():
        runner_cls = RUNNERS.get(cfg.get('runner_type', 'MMARunner'))
        if not (isinstance(runner_cls, type) and issubclass(runner_cls, MMARunner)):
            sync_data_with_model(cfg)  # data follows the model (MMARunner does it itself)
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else MMARunner.from_cfg(cfg)
        runner.train()


if __name__ == '__main__':
    main()
