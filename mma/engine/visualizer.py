"""The training visualizer: mmengine's, with TensorBoard as a config switch."""
import importlib.util
from typing import List, Optional

from mmengine.visualization import Visualizer

from mma.registry import VISUALIZERS


@VISUALIZERS.register_module()
class MMAVisualizer(Visualizer):
    """mmengine's ``Visualizer`` plus a ``tensorboard`` switch.

    ``--cfg-options visualizer.tensorboard=True`` turns TensorBoard logging on for any config.

    ``configs/_base_/default_runtime.py`` uses it with a ``LocalVisBackend``: the logged scalars
    (loss, lr, ...) go to ``WORK_DIR/<timestamp>/vis_data/scalars.json``, which
    ``tools/analyze_logs.py`` plots. The switch adds a ``TensorboardVisBackend`` writing event
    files to ``WORK_DIR/<timestamp>/vis_data/`` (``tensorboard --logdir WORK_DIR``).

    Args:
        tensorboard: Also log to TensorBoard. Needs the ``tensorboard`` package
            (``pip install 'mma[tensorboard]'``); checked when the visualizer is built, before
            training starts.
        vis_backends: As mmengine's.
        **kwargs: Other ``Visualizer`` arguments.
    """

    def __init__(self, name: str = 'visualizer', vis_backends: Optional[List[dict]] = None,
                 tensorboard: bool = False, **kwargs):
        backends = list(vis_backends or [])
        if tensorboard:
            if importlib.util.find_spec('tensorboard') is None:
                raise ImportError('visualizer.tensorboard=True needs the tensorboard package: '
                                  "pip install 'mma[tensorboard]' (or pip install tensorboard)")
            if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
                backends.append(dict(type='TensorboardVisBackend'))
        super().__init__(name=name, vis_backends=backends or None, **kwargs)
