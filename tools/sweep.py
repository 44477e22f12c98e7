#!/usr/bin/env python
"""Run a sweep of mma configs: train each, evaluate its last checkpoint, tabulate the results.

    python tools/sweep.py CONFIG_OR_GLOB [...] --work-dir DIR [--grid KEY=V1,V2,... ...]
        [--cfg-options K=V ...] [--launcher none|torchrun|slurm] [--gpus N] [--partition P]
        [--print-commands] [--collect] [--metric Avg] [--train-args "--amp"] [--decode-speed]

Examples:
    # every 7B ablation plus the preset, on 2 GPUs each, as torchrun commands
    python tools/sweep.py configs/lavin_7b_sqa.py 'configs/ablations/lavin_7b_sqa_*.py' \\
        --work-dir work_dirs/sweep_7b --launcher torchrun --gpus 2 --train-args=--amp
    # one config, a grid (Cartesian product; KEY1+KEY2=... ties keys to one value)
    python tools/sweep.py configs/lavin_7b_sqa.py --work-dir work_dirs/dims \\
        --grid model.llm_adapter.hidden_dim+model.vit_adapter.hidden_dim=4,8,16
    # the tiny demo ablations here on CPU, 1 epoch each
    python tools/sweep.py configs/lavin_tiny_demo.py 'configs/ablations/tiny/*.py' \\
        --work-dir work_dirs/sweep_tiny --cfg-options train_cfg.max_epochs=1
    # MMA against the PEFT methods on the tiny demo, with merged decoding speed
    python tools/sweep.py configs/lavin_tiny_demo.py 'configs/ablations/tiny/peft_*.py' \\
        --work-dir work_dirs/sweep_peft --decode-speed

Each run trains in DIR/RUN (tools/train.py), its last checkpoint's trainable tensors go to
DIR/RUN/adapters.pth, and tools/test.py evaluates them into DIR/RUN/predictions.json; the row is
saved as DIR/RUN/result.json. A run with a result (or predictions) is finished and skipped when the
sweep runs again; an interrupted run resumes from its last checkpoint. The sweep writes
DIR/results.csv, DIR/results.md and DIR/results.png (bar chart of --metric).

With --launcher torchrun|slurm or --print-commands nothing runs: one shell line per unfinished run
is printed (and written to DIR/commands.sh); afterwards `--collect` (same arguments) tabulates
the finished runs.
"""
import argparse
import os
import os.path as osp
import shlex
import sys



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('configs', nargs='*', help='config files or globs (quote the globs)')
    p.add_argument('--work-dir', help='sweep folder: one sub-folder per run, the tables')
    p.add_argument('--grid', nargs='+', default=[], metavar='KEY=V1,V2',
                   help='values to sweep for a config key; several --grid keys multiply')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='overrides for every run (data paths, a shorter schedule)')
    p.add_argument('--launcher', choices=['none', 'torchrun', 'slurm'], default='none',
                   help='none: run here, one after the other; torchrun/slurm: print commands')
    p.add_argument('--gpus', type=int, help="processes per training run (torchrun/slurm; "
                   "default: the config's num_gpus, else 1)")
    p.add_argument('--partition', help='slurm partition')
    p.add_argument('--train-args', default='', help='extra tools/train.py arguments, e.g. --amp')
    p.add_argument('--print-commands', action='store_true', help='print, do not run')
    p.add_argument('--collect', action='store_true',
                   help='run nothing: tabulate the runs that have finished')
    p.add_argument('--metric', default='Avg', help='metric of the bar chart')
    p.add_argument('--decode-speed', action='store_true',
                   help="add each run's merged decoding speed relative to the bare LLM (its "
                   'model built here with random weights: small models only)')
    p.add_argument('--export-adapters', metavar='RUN_DIR',
                   help='(used by printed commands) write RUN_DIR/adapters.pth from its last '
                   'checkpoint and exit')
    args = p.parse_args(argv)
    if args.export_adapters is None and (not args.configs or not args.work_dir):
        p.error('CONFIG and --work-dir are required')
    return args


def _gpus(args, config: str) -> int:
    if args.gpus:
        return args.gpus
    from mmengine.config import Config
    return int(Config.fromfile(config).get('num_gpus', 1))


def main(argv=None):
    args = parse_args(argv)
    from mma.apps.sweep import (Launch, command_line, execute, load_result, plan_runs,
                           write_report)
    from mma.apps.sweep.execute import export_adapters
    if args.export_adapters:
        print(export_adapters(args.export_adapters))
        return
    os.makedirs(args.work_dir, exist_ok=True)
    runs = plan_runs(args.configs, args.grid, args.work_dir)
    launch = Launch(launcher=args.launcher, partition=args.partition,
                    tools_dir=osp.relpath(osp.dirname(osp.abspath(__file__))),
                    options=list(args.cfg_options), train_args=shlex.split(args.train_args),
                    decode_speed=args.decode_speed)
    if args.collect:
        rows = [r for r in (load_result(run, launch.options, args.decode_speed) for run in runs)
                if r is not None]
        print(f'{len(rows)} of {len(runs)} runs finished')
    elif args.print_commands or args.launcher != 'none':
        launch.python = 'python'  # as on the machine that runs the commands
        lines = []
        for run in runs:
            if load_result(run, launch.options) is None:
                launch.gpus = _gpus(args, run.config)
                lines.append(command_line(run, launch))
        with open(osp.join(args.work_dir, 'commands.sh'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print('\n'.join(lines))
        print(f'# {len(lines)} of {len(runs)} runs to do; then: tools/sweep.py ... --collect',
              file=sys.stderr)
        return
    else:
        rows = execute(runs, launch)
    paths = write_report(rows, args.work_dir, args.metric)
    with open(paths['md']) as f:
        print(f.read())
    print('\n'.join(f'{k}: {v}' for k, v in paths.items() if v))
    if any(r.get('status') == 'failed' for r in rows):
        sys.exit(1)


if __name__ == '__main__':
    main()
