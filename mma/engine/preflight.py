"""``tools/train.py --check``: validate a config, its data and its weights without training.

Each step runs even when an earlier one failed, so one run lists every problem it can find:

1. the model builds (on the meta device: no memory) — component types, sizes — and the data
   pipelines take its visual tokens per image (a count set by hand that differs fails here);
2. its files load (``init_weights``): the tokenizer has the LLM's vocabulary, every LLaMA shard is
   there with the right shapes, the CLIP file, an adapter checkpoint of this config;
3. every dataloader's dataset builds (files, every qid, questions, answers, prompt format, the
   over-long policy, counted), every image opens, and its tokenizer has the LLM's vocabulary;
4. the evaluator's metrics build.
"""
from typing import Callable, List, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mma.builder import model_config, with_load_permission
from mma.registry import DATASETS, METRICS, explain_unknown_types

from .runner import sync_data_with_model

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _step(lines: List[str], name: str, fn: Callable[[], str]) -> bool:
    try:
        with explain_unknown_types():
            detail = fn()
    except Exception as err:  # noqa: BLE001  (every problem is reported, then the run fails)
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        lines.append(f'FAIL  {name}: {type(err).__name__}: {msg}')
        return False
    lines.append(f'ok    {name}' + (f': {detail}' if detail else ''))
    return True


def preflight(cfg: Config) -> Tuple[bool, List[str]]:
    """Run the checks above on ``cfg``; returns (all passed, one summary line per check)."""
    import mma  # noqa: F401  (registers mma's components)
    from mma.datasets.validate import check_dataset_vocab, validate_dataset
    lines: List[str] = []
    ok = True
    state = {}
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mma')):

        def build_model():
            model_cfg = with_load_permission(model_config(cfg), cfg.get('allow_unsafe_load'))
            with torch.device('meta'):
                state['model'] = mma.build_model(model_cfg)
            model = state['model']
            n = sum(p.numel() for p in model.parameters() if p.requires_grad)
            return f'{type(model).__name__}, {n:,} trainable parameters'

        def load_weights():
            model = state['model']
            model.init_weights()
            # the backbones' files through their contracts (weights_path), whatever the class
            files = [f'{k}={v}' for k, v in (
                ('llm', getattr(getattr(model, 'llm', None), 'weights_path', None)),
                ('vision', getattr(getattr(model, 'vision', None), 'weights_path', None)),
                ('adapters', getattr(model, 'adapter_checkpoint', None))) if v]
            return ', '.join(files) or 'no weight files configured (random base weights)'

        ok &= _step(lines, 'model', build_model)
        if 'model' in state:
            ok &= _step(lines, 'data pipeline follows the model', lambda: (
                f'{sync_data_with_model(cfg, state["model"])} visual tokens per image'))
            ok &= _step(lines, 'weights and model tokenizer', load_weights)
        for key in DATALOADERS:
            if not cfg.get(key):
                continue

            def check_data(key=key):
                dataset = DATASETS.build(cfg[key]['dataset'])
                counts = validate_dataset(dataset, f'{key}.dataset')
                if 'model' in state and hasattr(state['model'], 'llm'):
                    check_dataset_vocab(dataset, state['model'].llm.vocab_size,
                                        f'{key}.dataset')
                return (f"{counts['samples']} samples ({counts['image_samples']} with an image, "
                        f"all opened), over-long: {counts['truncated']} truncated, "
                        f"{counts['skipped']} skipped")

            ok &= _step(lines, key, check_data)
        for key in ('val_evaluator', 'test_evaluator'):
            if not cfg.get(key):
                continue
            metrics = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
            ok &= _step(lines, key, lambda metrics=metrics: ', '.join(
                type(METRICS.build(m)).__name__ for m in metrics))
    return bool(ok), lines
