"""Sweep execution: the commands of a run (train, adapter export, test), running them here or
printing them for a cluster, skipping finished runs, and reading a finished run's results."""
import glob
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, List, Optional, Sequence

from .runs import Run

RESULT = 'result.json'           # the marker of a finished run (and its table row)
PREDICTIONS = 'predictions.json'  # written by tools/test.py: {metrics, predictions}
ADAPTERS = 'adapters.pth'
LAUNCHERS = ('none', 'torchrun', 'slurm')


@dataclass
class Launch:
    """How to launch the tools.

    Attributes:
        launcher: ``'none'`` (python, one process), ``'torchrun'`` or ``'slurm'`` (``srun``).
        gpus: Processes for training (torchrun/slurm); evaluation of a slurm run uses one.
        partition: Slurm partition (``srun -p``).
        tools_dir: Folder of ``train.py`` / ``test.py`` / ``sweep.py``.
        python: Interpreter for ``'none'`` and slurm.
        options: ``--cfg-options`` common to all runs (data paths, short schedules).
        train_args: Extra ``tools/train.py`` arguments (e.g. ``['--amp']``).
        decode_speed: Measure each finished run's merged decoding speed relative to the bare
            LLM (:func:`~mma.apps.sweep.speed.merged_decode_speed`; small models on CPU).
    """
    launcher: str = 'none'
    gpus: int = 1
    partition: Optional[str] = None
    tools_dir: str = 'tools'
    python: str = sys.executable
    options: List[str] = field(default_factory=list)
    train_args: List[str] = field(default_factory=list)
    decode_speed: bool = False


def _options(launch: Launch, run: Run) -> List[str]:
    opts = list(launch.options) + list(run.options)
    return ['--cfg-options'] + opts if opts else []


def commands(run: Run, launch: Launch) -> List[List[str]]:
    """``[train, export adapters, test]`` argv lists for ``run``."""
    tools, wd = launch.tools_dir, run.work_dir
    train = [osp.join(tools, 'train.py'), run.config, '--work-dir', wd] + list(launch.train_args)
    if osp.isfile(osp.join(wd, 'last_checkpoint')):
        train.append('--resume')  # an interrupted run goes on from its last checkpoint
    test = [osp.join(tools, 'test.py'), run.config, osp.join(wd, ADAPTERS), '--work-dir',
            osp.join(wd, 'test'), '--out', osp.join(wd, PREDICTIONS)]
    export = [launch.python, osp.join(tools, 'sweep.py'), '--export-adapters', wd]
    train, test = train + _options(launch, run), test + _options(launch, run)
    if launch.launcher == 'none':
        return [[launch.python] + train, export, [launch.python] + test]
    if launch.launcher == 'torchrun':
        tr = ['torchrun', f'--nproc_per_node={launch.gpus}']
        return [tr + train + ['--launcher', 'pytorch'], export,
                tr + test + ['--launcher', 'pytorch']]
    if launch.launcher == 'slurm':
        srun = ['srun'] + (['-p', launch.partition] if launch.partition else [])
        srun += [f'--job-name={run.name}', '--kill-on-bad-exit=1']
        n = launch.gpus
        return [srun + [f'--gres=gpu:{n}', f'--ntasks={n}', f'--ntasks-per-node={n}',
                        launch.python, '-u'] + train + ['--launcher', 'slurm'], export,
                srun + ['--gres=gpu:1', '--ntasks=1', launch.python, '-u'] + test]
    raise ValueError(f'launcher {launch.launcher!r}; expected one of {LAUNCHERS}')


def command_line(run: Run, launch: Launch) -> str:
    """The run as one shell line: train && export && test."""
    return ' && '.join(shlex.join(c) for c in commands(run, launch))


# ------------------------------------------------------------------------------ execution --
def last_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine saved last in ``work_dir``."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        path = open(marker).read().strip()
        if osp.isfile(path):
            return path
    found = glob.glob(osp.join(work_dir, '*_*.pth'))
    numbered = [(int(m.group(1)), p) for p in found
                if (m := re.search(r'(?:epoch|iter)_(\d+)\.pth$', p))]
    if not numbered:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return max(numbered)[1]


def export_adapters(work_dir: str) -> str:
    """Write the trainable tensors of the run's last checkpoint to ``work_dir/adapters.pth`` (the
    adapter-only file ``tools/test.py`` takes); returns its path."""
    import torch

    from mma.models.adapter_checkpoint import read_adapter_state_dict
    with warnings.catch_warnings():  # our own training checkpoint: full unpickling is fine
        warnings.simplefilter('ignore')
        sd = read_adapter_state_dict(last_checkpoint(work_dir))
    out = osp.join(work_dir, ADAPTERS)
    torch.save(sd, out)
    return out


def run_commands(run: Run, launch: Launch) -> None:
    """Run train, export and test of ``run`` here, one after the other; logs go to
    ``{work_dir}/{train,test}.log``. Raises ``RuntimeError`` when a step fails."""
    os.makedirs(run.work_dir, exist_ok=True)
    # the tools import the mma this sweep runs with
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    for step, argv in zip(('train', 'export', 'test'), commands(run, launch)):
        if step == 'export':  # in this process: saves an interpreter start
            export_adapters(run.work_dir)
            continue
        log = osp.join(run.work_dir, f'{step}.log')
        with open(log, 'w') as f:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0:
            raise RuntimeError(f'{run.name}: {step} failed (exit {rc}); see {log}')


def execute(runs: Sequence[Run], launch: Launch,
            runner: Callable[[Run, Launch], None] = run_commands,
            log: Callable[[str], None] = print) -> List[dict]:
    """Run the unfinished runs here (sequentially), skipping finished ones; return one result
    row per run (``status`` ``'done'`` or ``'failed'``)."""
    rows = []
    for i, run in enumerate(runs, 1):
        row = load_result(run, launch.options)
        if row is not None:
            log(f'[{i}/{len(runs)}] {run.name}: finished before, skipped')
            rows.append(row)
            continue
        log(f'[{i}/{len(runs)}] {run.name}: running')
        start = time.time()
        try:
            runner(run, launch)
        except RuntimeError as err:
            log(f'[{i}/{len(runs)}] {run.name}: {err}')
            rows.append(dict(run=run.name, config=run.config, changes=run.changes,
                             status='failed'))
            continue
        rows.append(collect(run, time.time() - start, launch.options, launch.decode_speed))
    return rows


# ------------------------------------------------------------------------------ collection --
def load_result(run: Run, options: Sequence[str] = (),
                decode_speed: bool = False) -> Optional[dict]:
    """The row of a finished run: its ``result.json``, or collected from its predictions when
    the run finished elsewhere (e.g. the printed commands on a cluster); None if unfinished."""
    path = osp.join(run.work_dir, RESULT)
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    if osp.isfile(osp.join(run.work_dir, PREDICTIONS)):
        return collect(run, options=options, decode_speed=decode_speed)
    return None


def run_config(run: Run, options: Sequence[str] = ()):
    """The run's config with the common ``options`` and its own merged in."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(run.config)
    opts = {}
    for opt in list(options) + list(run.options):
        key, _, value = opt.partition('=')
        opts[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(opts)
    return cfg


def trainable_params(run: Run, options: Sequence[str] = ()) -> int:
    """Trainable parameters of the run's model (built on the meta device: no memory, no files)."""
    import torch

    import mma
    cfg = run_config(run, options)
    with torch.device('meta'):
        model = mma.build_model(cfg)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _log_dirs(work_dir: str) -> List[str]:
    """mmengine's timestamped log folders of a work dir, oldest first."""
    return sorted(d for d in glob.glob(osp.join(work_dir, '[0-9]' * 8 + '_' + '[0-9]' * 6))
                  if osp.isdir(d))


def final_loss(work_dir: str) -> Optional[float]:
    """The last training loss logged (mmengine's ``vis_data/scalars.json``)."""
    for d in reversed(_log_dirs(work_dir)):
        path = osp.join(d, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        losses = [json.loads(line).get('loss') for line in open(path) if line.strip()]
        losses = [x for x in losses if x is not None]
        if losses:
            return float(losses[-1])
    return None


def _elapsed(work_dir: str) -> Optional[float]:
    """From the first log folder's timestamp to the predictions file (runs made elsewhere)."""
    dirs = _log_dirs(work_dir)
    if not dirs:
        return None
    start = datetime.strptime(osp.basename(dirs[0]), '%Y%m%d_%H%M%S').timestamp()
    return osp.getmtime(osp.join(work_dir, PREDICTIONS)) - start


def collect(run: Run, wall_time: Optional[float] = None,
            options: Sequence[str] = (), decode_speed: bool = False) -> dict:
    """Read a finished run into a table row and save it as its ``result.json`` (the marker that
    makes a later sweep skip it). The row names the LLM adapter method and, with
    ``decode_speed``, the merged decoding speed relative to the bare LLM."""
    from .speed import merged_decode_speed, method_of
    with open(osp.join(run.work_dir, PREDICTIONS)) as f:
        metrics = json.load(f)['metrics']
    row = dict(run=run.name, config=run.config, changes=run.changes, status='done',
               trainable_params=trainable_params(run, options),
               final_loss=final_loss(run.work_dir), metrics=metrics,
               wall_time_s=wall_time if wall_time is not None else _elapsed(run.work_dir),
               method=method_of(run_config(run, options)))
    if decode_speed:
        row['merged_decode_speed'] = merged_decode_speed(run_config(run, options))
    with open(osp.join(run.work_dir, RESULT), 'w') as f:
        json.dump(row, f, indent=1)
    return row
