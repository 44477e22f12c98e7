"""The mmengine 0.10.x fixes mma needs on torch >= 2.6 and on CPU, and where each lives.

1. Safe loading (:mod:`mma.checkpoint_file`): mmengine loads local checkpoints (resume,
   ``load_from``; ``Runner`` and ``FlexibleRunner``) through the loader
   :func:`register_safe_checkpoint_loader` registers, with ``weights_only=True``.
2. CPU distributed launch (:mod:`mma.engine.distributed`): mmengine's ``init_dist`` calls
   ``torch.cuda.set_device``; mma starts the process group itself and wraps DDP for CPU.
3. FSDP resume (:mod:`mma.engine.fsdp`): :class:`~mma.engine.fsdp.CompatFSDPStrategy`.

Two more make mmengine cheaper, not correct: ``import mma`` imports ``mmengine.optim`` without the
transformers import it makes for ``Adafactor`` (:mod:`mma.mmengine_import`; ~4 s per process
with transformers and peft installed), and :class:`~mma.engine.runner.MMARunner` formats its
config with yapf once per content, not for every log, dump and checkpoint
(:class:`~mma.engine.runner.FormattedOnceConfig`).

Fix 1 is applied by a tool for its run (:func:`apply_mmengine_fixes`); fixes 2 and 3 are used
explicitly (launch, config).
"""
from mma.checkpoint_file import AllowUnsafe, load_checkpoint_file


def register_safe_checkpoint_loader(allow_unsafe: AllowUnsafe = False) -> None:
    """Fix 1: mmengine loads local checkpoints with :func:`load_checkpoint_file`, unpickling fully
    only the files ``allow_unsafe`` names (True: any). Each call replaces the previous loader, so
    a run's permission is the one its tool passed, never one left by an earlier run."""
    from mmengine.runner import CheckpointLoader

    def load_local_checkpoint(filename: str, map_location=None):  # mmengine logs the __name__
        return load_checkpoint_file(filename, map_location, allow_unsafe=allow_unsafe)

    CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)


def apply_mmengine_fixes(allow_unsafe: AllowUnsafe = False) -> None:
    """Apply fix 1 for a run; ``allow_unsafe`` is the config's ``allow_unsafe_load``."""
    register_safe_checkpoint_loader(allow_unsafe)
