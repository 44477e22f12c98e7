"""Loss and learning-rate curves from mmengine work dirs."""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

Curves = Dict[str, Tuple[List[int], List[float]]]  # key -> (steps, values)


def find_scalar_files(path: str) -> List[str]:
    """The scalar logs of a work dir, oldest run first.

    mmengine's ``LocalVisBackend`` writes ``WORK_DIR/<timestamp>/vis_data/scalars.json`` (one JSON
    object per logged iteration) for every run in ``WORK_DIR``; a resumed run adds a new
    timestamp folder. ``path`` may also be one such JSON file.
    """
    if osp.isfile(path):
        return [path]
    files = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not files:  # a vis_data folder, or logs written without LocalVisBackend's scalars.json
        files = sorted(glob.glob(osp.join(path, 'scalars.json')) or
                       glob.glob(osp.join(path, '*', 'vis_data', '*.json')))
    if not files:
        raise FileNotFoundError(f'no mmengine scalar log under {path} (expected '
                                f'{osp.join(path, "<timestamp>", "vis_data", "scalars.json")})')
    return files


def load_scalars(path: str, keys: Optional[Sequence[str]] = None) -> Curves:
    """Training curves of one work dir (or one scalars JSON file), indexed by iteration.

    Runs are read oldest first and a later record of the same step replaces an earlier one, so a
    run killed and resumed from a checkpoint reads as one run. Records without a ``step`` or
    without a requested key (e.g. validation metrics) are skipped for that key.
    """
    by_key: Dict[str, Dict[int, float]] = {}
    for file in find_scalar_files(path):
        with open(file) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                if 'step' not in rec:
                    continue
                for k, v in rec.items():
                    if k in ('step', 'epoch', 'iter') or (keys is not None and k not in keys):
                        continue
                    if isinstance(v, (int, float)):
                        by_key.setdefault(k, {})[int(rec['step'])] = float(v)
    return {k: (sorted(d), [d[s] for s in sorted(d)]) for k, d in by_key.items()}


def _labels(paths: Sequence[str]) -> List[str]:
    names = [osp.basename(osp.normpath(p)) for p in paths]
    return names if len(set(names)) == len(names) else [osp.normpath(p) for p in paths]


def plot_curves(paths: Sequence[str], keys: Sequence[str] = ('loss', 'lr'),
                out: Optional[str] = None, labels: Optional[Sequence[str]] = None):
    """One panel per key, one line per work dir (overlaid runs, e.g. ablations).

    Args:
        paths: Work dirs (or scalars JSON files).
        keys: Logged scalars to draw, e.g. ``loss``, ``lr``, ``loss_tokens``.
        out: Save the figure here (PNG, by extension) if given.
        labels: Legend entries; default: the work dirs' names.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(labels) if labels is not None else _labels(paths)
    runs = [load_scalars(p, keys) for p in paths]
    missing = [k for k in keys if not any(k in r for r in runs)]
    if missing:
        found = sorted(set().union(*runs))
        raise KeyError(f'{missing} not logged in {list(paths)}; logged: {found}')
    fig = Figure(figsize=(6.4, 2.6 * len(keys)), layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        for label, run in zip(labels, runs):
            if key in run:
                ax.plot(*run[key], label=label, linewidth=1.2)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if key in ('lr', 'base_lr'):
            ax.ticklabel_format(axis='y', style='sci', scilimits=(-2, 2))
    axes[0].legend(fontsize='small')
    axes[-1].set_xlabel('iteration')
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig
