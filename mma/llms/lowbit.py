"""LaVIN-lite: 4-bit / 8-bit frozen LLM linears (bitsandbytes) and a paged 32-bit AdamW.

Both are config switches and both need CUDA (bitsandbytes' low-bit kernels):

* ``llm=dict(type='LLaMA', ..., quantization='nf4')`` (or ``'fp4'``, ``'int8'``): after the base
  weights are loaded, the attention and FFN projections of every block are replaced by
  bitsandbytes layers and quantised on the GPU. Embeddings, norms, the output head and the
  adapters stay in full precision, and adapters keep training through the frozen quantised layers.
* ``optim_wrapper=dict(optimizer=dict(type='PagedAdamW32bit', lr=..., betas=..., ...))``.

Without CUDA or without bitsandbytes (``pip install 'mma[lowbit]'``) they fail at once with a
message saying so.
"""
from typing import Iterable, Optional

import torch
from torch import nn

from mma.registry import OPTIMIZERS

QUANTIZATION_MODES = ('nf4', 'fp4', 'int8')


def require_lowbit(what: str):
    """Return the ``bitsandbytes`` module, or raise saying why ``what`` cannot run here."""
    if not torch.cuda.is_available():
        raise RuntimeError(f'{what} needs a CUDA GPU (bitsandbytes low-bit kernels) and this '
                           'machine has none; remove the low-bit switch (quantization=None, '
                           "a plain AdamW) to run on CPU")
    try:
        import bitsandbytes
    except ImportError as err:
        raise ImportError(f"{what} needs bitsandbytes: pip install 'mma[lowbit]'") from err
    return bitsandbytes


def check_quantization(mode: Optional[str]) -> None:
    """Validate a ``quantization`` switch early (at model construction)."""
    if mode is None:
        return
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f'unknown LLaMA quantization {mode!r}; expected one of '
                         f'{QUANTIZATION_MODES} or None')
    require_lowbit(f'LLaMA quantization={mode!r}')


@torch.no_grad()
def quantize_llama(model: nn.Module, mode: str, compute_dtype: torch.dtype = torch.bfloat16,
                   device: Optional[torch.device] = None) -> int:
    """Replace the frozen linears a backbone names (``model.quantizable_linears()``: for LLaMA the
    attention and FFN projections of every block) by quantised bitsandbytes layers.

    Returns:
        The number of layers replaced.
    """
    bnb = require_lowbit(f'LLaMA quantization={mode!r}')
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f'unknown quantization {mode!r}; expected one of {QUANTIZATION_MODES}')
    device = device or torch.device('cuda', torch.cuda.current_device())
    n = 0
    for parent, name in model.quantizable_linears():
        lin = getattr(parent, name)
        if not isinstance(lin, nn.Linear):
            continue  # already quantised
        w = lin.weight.detach().to('cpu', torch.float16)  # bnb quantises on the move to CUDA
        bias = lin.bias is not None
        if mode == 'int8':
            q = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=bias,
                                    has_fp16_weights=False, threshold=6.0)
            q.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
        else:
            q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=bias,
                                  compute_dtype=compute_dtype, quant_type=mode)
            q.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type=mode)
        if bias:
            q.bias = nn.Parameter(lin.bias.detach().to('cpu', compute_dtype),
                                  requires_grad=False)
        setattr(parent, name, q.to(device))
        n += 1
    return n


@OPTIMIZERS.register_module(name='PagedAdamW32bit', force=True)
def paged_adamw_32bit(params: Iterable, **kwargs) -> torch.optim.Optimizer:
    """bitsandbytes' paged 32-bit AdamW (optimizer states page to host memory under pressure)."""
    bnb = require_lowbit('PagedAdamW32bit')
    return bnb.optim.PagedAdamW32bit(params, **kwargs)
