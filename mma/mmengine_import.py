"""mmengine's optimizer registry without transformers' start-up cost.

``mmengine.optim`` imports transformers when it is installed, only to register one optimizer
(``Adafactor``). That one import loads much of transformers and, through it, peft: about 4 s of
every mma process's start on a 2-core machine (``tools/train.py --help``: 10.2 s -> 5.7 s). mma
imports ``mmengine.optim`` first with transformers hidden from that import, then registers
``Adafactor`` itself; transformers is imported when a config builds it
(``optim_wrapper=dict(optimizer=dict(type='Adafactor', ...))``), with the same class and
arguments.

Where transformers is already imported, or ``mmengine.optim`` is, nothing is hidden: mmengine
registers transformers' class as usual.
"""
import importlib.abc
import sys


class _HideTransformers(importlib.abc.MetaPathFinder):
    """Makes ``import transformers`` fail while mmengine registers its optimizers."""

    def find_spec(self, name, path=None, target=None):
        if name == 'transformers' or name.startswith('transformers.'):
            raise ModuleNotFoundError('mma: transformers is imported when a config builds '
                                      'Adafactor, not at start-up', name=name)
        return None


def Adafactor(params, *args, **kwargs):
    """transformers' ``Adafactor`` optimizer, imported when built (``pip install transformers``)."""
    try:
        from transformers import Adafactor as adafactor
    except ImportError as e:
        raise ImportError("optimizer type 'Adafactor' is transformers' Adafactor: "
                          'pip install transformers') from e
    return adafactor(params, *args, **kwargs)


def import_mmengine_optim() -> None:
    """Import ``mmengine.optim`` (once per process) without importing transformers."""
    if 'mmengine.optim' in sys.modules or 'transformers' in sys.modules:
        import mmengine.optim  # noqa: F401
        return
    hide = _HideTransformers()
    sys.meta_path.insert(0, hide)
    try:
        import mmengine.optim  # noqa: F401
    finally:
        sys.meta_path.remove(hide)
    from mmengine.registry import OPTIMIZERS
    if 'Adafactor' not in OPTIMIZERS.module_dict:
        OPTIMIZERS.register_module(name='Adafactor', module=Adafactor)
