"""Evaluate a LaVIN config with an adapter checkpoint through the mmengine Runner's test loop.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--overwrite]
                         [--cfg-options k=v ...] [--debug]
    torchrun --nproc_per_node N tools/test.py CONFIG CHECKPOINT --launcher pytorch

Multi-process runs shard the test set (gloo on CPU, NCCL on CUDA); the metric gathers the results
in dataset order, so N processes give the 1-process numbers. An existing predictions file is never
replaced silently: the tool refuses to start unless --overwrite is given. A data, file or config
error prints one paragraph and exits with status 2; --debug (or MMA_DEBUG=1) shows the traceback.
"""
import argparse
import os.path as osp
from typing import List

import torch.distributed as dist
from mmengine.config import Config, DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a LaVIN model (adapter checkpoint)')
    p.add_argument('config')
    p.add_argument('checkpoint', help='adapter-only weights (the trainable tensors)')
    p.add_argument('--work-dir', help='where logs and predictions go')
    p.add_argument('--out', help='predictions file (default: WORK_DIR/predictions.json)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace existing predictions files (otherwise the tool refuses)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    p.add_argument('--debug', action='store_true',
                   help='show the full traceback of a data or config error (also MMA_DEBUG=1)')
    return p.parse_args(argv)


def metric_configs(cfg: Config) -> list:
    """The metric configs of ``test_evaluator`` (one dict, a list, or ``dict(metrics=...)``)."""
    evaluators = cfg.test_evaluator
    metrics = evaluators if isinstance(evaluators, list) else evaluators.get('metrics', evaluators)
    return metrics if isinstance(metrics, list) else [metrics]


def _metric_class(m: dict):
    from mma.registry import METRICS
    return m['type'] if isinstance(m['type'], type) else METRICS.get(m['type'])


def set_prediction_files(cfg: Config, out: str, overwrite: bool = False) -> List[str]:
    """Point every metric of ``test_evaluator`` that writes predictions (one that takes a
    ``prediction_file`` argument) at a file: ``out``, or ``{stem}_{i}{ext}`` for several; refuse
    when one exists, unless ``overwrite``. Other metrics are left as configured."""
    import inspect
    writers = [m for m in metric_configs(cfg) if _metric_class(m) is not None and
               'prediction_file' in inspect.signature(_metric_class(m).__init__).parameters]
    stem, ext = osp.splitext(out)
    files = [out if len(writers) == 1 else f'{stem}_{i}{ext}' for i in range(len(writers))]
    existing = [f for f in files if osp.exists(f)]
    if existing and not overwrite:
        raise SystemExit(f'tools/test.py: predictions file {existing[0]} already exists; it is '
                         'not overwritten: pass --out NEW_FILE (or another --work-dir), or '
                         '--overwrite to replace it')
    for m, f in zip(writers, files):
        m['prediction_file'] = f
    return files


def print_results(cfg: Config, metrics: dict) -> None:
    """Each metric's results as its class formats them (``format_results``, e.g. ScienceQA's
    table), the others one ``name: value`` line each."""
    shown = set()
    for m in metric_configs(cfg):
        cls = _metric_class(m)
        prefix = m.get('prefix') or getattr(cls, 'default_prefix', None)
        if getattr(cls, 'format_results', None) is None or not prefix:
            continue
        mine = {k.split('/', 1)[1]: v for k, v in metrics.items() if k.startswith(prefix + '/')}
        text = cls.format_results(mine)
        if text:
            print(text)
            shown.update(f'{prefix}/{k}' for k in mine)
    for k, v in metrics.items():
        if k not in shown:
            print(f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}')


def main(argv=None):
    args = parse_args(argv)
    from mma.errors import report_user_errors
    with report_user_errors('tools/test.py', args.debug):
        evaluate(args)


def evaluate(args) -> None:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.setdefault('default_scope', 'mma')
    cfg.load_from, cfg.resume = None, False

    import mma
    import mma.datasets  # noqa: F401
    import mma.evaluation  # noqa: F401
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mma'):
        set_prediction_files(cfg, args.out or osp.join(cfg.work_dir, 'predictions.json'),
                             args.overwrite)
    from mma.engine.distributed import setup_distributed
    from mma.engine import runner_with_model
    from mma.registry import explain_unknown_types
    setup_distributed(cfg, args.launcher)
    with explain_unknown_types():
        model = mma.load_model(cfg, args.checkpoint)  # base weights, then the adapters
        metrics = runner_with_model(cfg, model).test()
    if not dist.is_initialized() or dist.get_rank() == 0:
        with DefaultScope.overwrite_default_scope('mma'):
            print_results(cfg, metrics)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
