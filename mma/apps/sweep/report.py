"""Sweep results: one table (CSV and Markdown) and a bar chart of the main metric."""
import csv
import math
import os.path as osp
from typing import List, Optional, Sequence

BASE_COLUMNS = ('run', 'config', 'changes', 'trainable_params', 'final_loss')
TAIL_COLUMNS = ('wall_time_s', 'status')
# columns shown when a row has them: after 'config', and before 'status'
OPTIONAL_COLUMNS = {'method': 'config', 'merged_decode_speed': 'wall_time_s'}


def metric_names(rows: Sequence[dict]) -> List[str]:
    """Metric columns in first-seen order over the rows."""
    names: List[str] = []
    for row in rows:
        names += [k for k in row.get('metrics', {}) if k not in names]
    return names


def table(rows: Sequence[dict]) -> List[dict]:
    """Flat rows: run, config, method (if known), changes (``'; '``-joined), trainable_params,
    final_loss, one column per metric, wall_time_s, merged_decode_speed (if measured), status.
    Missing values are None."""
    metrics = metric_names(rows)
    columns = []
    for c in BASE_COLUMNS + tuple(metrics) + TAIL_COLUMNS:
        columns.append(c)
        columns += [o for o, after in OPTIONAL_COLUMNS.items()
                    if after == c and any(o in r for r in rows)]
    out = []
    for row in rows:
        flat = {c: row.get(c) for c in BASE_COLUMNS + TAIL_COLUMNS + tuple(OPTIONAL_COLUMNS)}
        flat['changes'] = '; '.join(row.get('changes') or [])
        flat.update({m: row.get('metrics', {}).get(m) for m in metrics})
        out.append({c: flat[c] for c in columns})
    return out


def write_csv(rows: Sequence[dict], path: str) -> str:
    flat = table(rows)
    columns = list(flat[0]) if flat else list(BASE_COLUMNS + TAIL_COLUMNS)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({k: '' if v is None else v for k, v in r.items()} for r in flat)
    return path


def _cell(column: str, value) -> str:
    if value is None:
        return ''
    if isinstance(value, float) and math.isnan(value):
        return 'nan'
    if column == 'trainable_params':
        return f'{int(value):,}'
    if column == 'final_loss':
        return f'{value:.4f}'
    if column == 'wall_time_s':
        return f'{value:.0f}'
    if isinstance(value, float):
        return f'{value:.2f}'
    return str(value).replace('|', '\\|')


def markdown(rows: Sequence[dict]) -> str:
    """The table as GitHub Markdown (accuracies with 2 decimals, loss with 4)."""
    flat = table(rows)
    if not flat:
        return ''
    columns = list(flat[0])
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '|'.join('---' if c in ('run', 'config', 'method', 'changes', 'status')
                            else '---:' for c in columns) + '|']
    lines += ['| ' + ' | '.join(_cell(c, r[c]) for c in columns) + ' |' for r in flat]
    return '\n'.join(lines) + '\n'


def plot(rows: Sequence[dict], metric: str, path: str) -> Optional[str]:
    """A bar chart of ``metric`` per run (PNG); None when no run has it."""
    points = [(r['run'], r['metrics'][metric]) for r in rows
              if isinstance(r.get('metrics', {}).get(metric), (int, float))]
    if not points:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names, values = zip(*points)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 4))
    bars = ax.bar(range(len(names)), values, color='tab:blue')
    ax.bar_label(bars, fmt='%.2f', fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=40, ha='right', fontsize=8)
    finite = [v for v in values if math.isfinite(v)] or [0.0]
    top = max(finite)
    ax.set_ylim(min(0.0, min(finite)), top * 1.15 if top > 0 else 1.0)
    ax.set_ylabel(metric)
    ax.set_title(f'{metric} per run')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(rows: Sequence[dict], sweep_dir: str, metric: str = 'Avg') -> dict:
    """``results.csv``, ``results.md`` and ``results.png`` (bar chart of ``metric``) in
    ``sweep_dir``; returns their paths."""
    paths = dict(csv=write_csv(rows, osp.join(sweep_dir, 'results.csv')))
    paths['md'] = osp.join(sweep_dir, 'results.md')
    with open(paths['md'], 'w') as f:
        f.write(markdown(rows))
    paths['png'] = plot(rows, metric, osp.join(sweep_dir, 'results.png'))
    return paths
