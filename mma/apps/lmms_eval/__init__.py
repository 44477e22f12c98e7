"""mma as an lmms-eval model (``pip install 'mma[lmms-eval]'``).

lmms-eval (0.7+) finds out-of-tree models through the Python entry-point group
``lmms_eval.models``; mma's ``pyproject.toml`` declares ``mma = "mma.apps.lmms_eval:manifest"``, so
after installing mma the harness knows ``--model mma``::

    lmms-eval --model mma --model_args config=CONFIG.py,checkpoint=ADAPTERS.pth,merge=image \\
        --tasks scienceqa_img --batch_size 8

The model class is :class:`mma.apps.lmms_eval.model.MMA`; see ``docs/evaluation.md``. Only this
package imports lmms-eval, and only when lmms-eval loads it.
"""

__all__ = ['MODEL_CLASS_PATH', 'manifest']

#: Where lmms-eval imports the model class from (resolved lazily by its registry).
MODEL_CLASS_PATH = 'mma.apps.lmms_eval.model.MMA'


def manifest():
    """The entry point of group ``lmms_eval.models``: lmms-eval calls it while building its model
    registry, and imports :data:`MODEL_CLASS_PATH` only when ``--model mma`` is asked for."""
    from lmms_eval.models.registry_v2 import ModelManifest
    return ModelManifest(model_id='mma', simple_class_path=MODEL_CLASS_PATH)
