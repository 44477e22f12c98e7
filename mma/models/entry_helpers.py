"""Small helpers of :class:`~mma.models.LaVIN` (building adapters for slots, storing frozen
weights in a dtype, mmengine's init report, data samples as dicts)."""
import contextlib
import logging

import torch
from mmengine.logging import MMLogger
from torch import nn

from mma.registry import ADAPTERS
from mma.slots import AdapterSlot


def build_adapter(cfg: dict, width: int, slot: AdapterSlot) -> nn.Module:
    """The adapter for ``slot``: ``in_features`` (default ``width``) and the slot's sizes filled
    in where the config does not set them (a linear slot's widths and target)."""
    return ADAPTERS.build({'in_features': width, **slot.sizes, **cfg})


def cast_frozen(model: nn.Module, dtype) -> None:
    """Store every frozen (``requires_grad=False``) tensor of ``model`` in ``dtype`` (a torch
    dtype or its name): no fp32 copy of a frozen weight remains."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    for p in model.parameters():
        if not p.requires_grad:
            p.data = p.data.to(dtype)


@contextlib.contextmanager
def init_report_to_log_file_only():
    """mmengine's ``init_weights`` writes a per-parameter report into the log file of a Runner,
    and without one (chat, merging, benchmarks) prints it, a few lines per parameter, to the
    console. Keep the log-file report; drop the console one (and other INFO lines of the call)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def as_dict(sample) -> dict:
    """A data sample (dict or mmengine data element) as a new plain dict."""
    if isinstance(sample, dict):
        return dict(sample)
    if hasattr(sample, 'to_dict'):
        return dict(sample.to_dict())
    return dict(vars(sample))
