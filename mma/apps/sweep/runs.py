"""Sweep planning: configs (files, globs) x a grid of ``--cfg-options`` values -> named runs, and
what each run changes relative to the preset it derives from."""
import ast
import glob
import itertools
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Config fields the Runner reads; helper variables (``temperature = 5.0``) are not reported.
RUNNER_FIELDS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'optim_wrapper',
                 'param_scheduler', 'train_cfg', 'val_cfg', 'test_cfg', 'val_evaluator',
                 'test_evaluator', 'default_hooks', 'custom_hooks', 'randomness', 'strategy',
                 'runner_type', 'model_wrapper_cfg')
REMOVED = '<removed>'


@dataclass
class Run:
    """One training + evaluation of a config with some ``--cfg-options``.

    Attributes:
        name: Unique in the sweep; also the run's folder name.
        config: Config file path.
        options: The run's own ``key=value`` overrides (grid values), as given on the CLI.
        changes: What differs from the preset: the config's own changes, then ``options``.
        work_dir: Its folder under the sweep folder.
    """
    name: str
    config: str
    options: List[str] = field(default_factory=list)
    changes: List[str] = field(default_factory=list)
    work_dir: str = ''


def split_values(text: str) -> List[str]:
    """Split ``'4,8,[1,2],"a,b"'`` on the commas outside brackets and quotes."""
    out, depth, quote, cur = [], 0, None, ''
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif ch == ',' and depth == 0:
            out.append(cur)
            cur = ''
            continue
        cur += ch
    out.append(cur)
    if any(not v for v in out):
        raise ValueError(f'empty value in {text!r}')
    return out


def parse_grid(items: Sequence[str]) -> List[Tuple[List[str], List[str]]]:
    """``['a.b=1,2', 'c+d=x,y']`` -> ``[(['a.b'], ['1', '2']), (['c', 'd'], ['x', 'y'])]``.

    Keys joined by ``+`` are tied: they take the same value in each run.
    """
    axes = []
    for item in items:
        key, sep, values = item.partition('=')
        if not sep or not key:
            raise ValueError(f'--grid expects KEY=V1,V2,...; got {item!r}')
        axes.append((key.split('+'), split_values(values)))
    keys = [k for ks, _ in axes for k in ks]
    if len(set(keys)) != len(keys):
        raise ValueError(f'a key appears twice in the grid: {keys}')
    return axes


def expand_grid(axes: Sequence[Tuple[List[str], List[str]]]) -> List[List[str]]:
    """The Cartesian product of the grid axes, each point a list of ``key=value`` options
    (one empty point for an empty grid)."""
    points = []
    for combo in itertools.product(*[values for _, values in axes]):
        points.append([f'{k}={v}' for (keys, _), v in zip(axes, combo) for k in keys])
    return points


def expand_configs(patterns: Sequence[str]) -> List[str]:
    """Config files from paths and globs, in the given order (each glob sorted), no repeats."""
    out: List[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else (
            [pattern] if osp.isfile(pattern) else [])
        if not matches:
            raise FileNotFoundError(f'no config file matches {pattern!r}')
        out += [m for m in matches if m not in out]
    return out


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.+-]+', '-', text).strip('-') or 'x'


def _short_keys(keys: Sequence[str]) -> Dict[str, str]:
    """Each key by its shortest dotted suffix that no other key ends with."""
    short = {}
    for key in keys:
        parts = key.split('.')
        for n in range(1, len(parts) + 1):
            cand = '.'.join(parts[-n:])
            if not any(o != key and (o == cand or o.endswith('.' + cand)) for o in keys):
                break
        short[key] = cand
    return short


def _axis_label(keys: Sequence[str], short: Dict[str, str]) -> str:
    """Tied keys with one last component (``llm_adapter.hidden_dim+vit_adapter.hidden_dim``)
    are named by it (``hidden_dim``)."""
    last = {k.split('.')[-1] for k in keys}
    return last.pop() if len(keys) > 1 and len(last) == 1 else '+'.join(short[k] for k in keys)


def plan_runs(configs: Sequence[str], grid: Sequence[str], sweep_dir: str) -> List[Run]:
    """Runs for every config x grid point, named ``{config stem}[_{key}-{value}...]``."""
    axes = parse_grid(grid)
    short = _short_keys([k for ks, _ in axes for k in ks])
    labels = [_axis_label(keys, short) for keys, _ in axes]
    runs: List[Run] = []
    for cfg in expand_configs(configs):
        own = config_changes(cfg)
        for combo in itertools.product(*[values for _, values in axes]):
            options = [f'{k}={v}' for (keys, _), v in zip(axes, combo) for k in keys]
            parts = [osp.splitext(osp.basename(cfg))[0]]
            parts += [f'{_slug(label)}-{_slug(v)}' for label, v in zip(labels, combo)]
            runs.append(Run('_'.join(parts), cfg, options, own + options))
    seen: Dict[str, int] = {}
    for run in runs:  # same stem in two folders: number the later ones
        n = seen.get(run.name, 0)
        seen[run.name] = n + 1
        if n:
            run.name = f'{run.name}-{n + 1}'
        run.work_dir = osp.join(sweep_dir, run.name)
    return runs


# ---------------------------------------------------------------------------- changed keys --
def _base_files(path: str) -> List[str]:
    """The ``_base_`` files a config names, as paths."""
    tree = ast.parse(open(path).read(), path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], 'id', None) == '_base_'):
            value = ast.literal_eval(node.value)
            value = [value] if isinstance(value, str) else list(value)
            return [osp.normpath(osp.join(osp.dirname(path), v)) for v in value]
    return []


def preset_of(path: str) -> Optional[str]:
    """The full config a thin config derives from: follow the ``_base_`` entries that are not
    partial ``_base_/`` files up to the top (None for a config made of partials only)."""
    parent = None
    while True:
        full = [b for b in _base_files(path) if '_base_' not in b.split(os.sep)]
        if not full:
            return parent
        path = parent = full[0]


def _diff(a: Any, b: Any, prefix: str, out: List[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            key = f'{prefix}.{k}' if prefix else str(k)
            if k not in b:
                out.append(f'{key}={REMOVED}')
            elif k not in a:
                _leaves(b[k], key, out)
            else:
                _diff(a[k], b[k], key, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f'{prefix}.{i}', out)
    elif a != b:
        _leaves(b, prefix, out)


def _leaves(value: Any, prefix: str, out: List[str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _leaves(v, f'{prefix}.{k}', out)
    else:
        out.append(f'{prefix}={value}')


def config_changes(path: str) -> List[str]:
    """``key=value`` for every Runner field of ``path`` that differs from its preset
    (:func:`preset_of`); empty for a preset itself."""
    from mmengine.config import Config
    preset = preset_of(path)
    if preset is None:
        return []
    a, b = Config.fromfile(preset).to_dict(), Config.fromfile(path).to_dict()
    out: List[str] = []
    for key in RUNNER_FIELDS:
        if key in a or key in b:
            _diff(a.get(key), b.get(key), key, out)
    return out
