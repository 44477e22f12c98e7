"""The base of mma's metrics: an optional JSON file of the per-item predictions."""
import json
import os
from typing import Any, Optional

from mmengine.evaluator import BaseMetric


class PredictionFileMetric(BaseMetric):
    """An mmengine ``BaseMetric`` that can write its per-item predictions to a JSON file.

    Args:
        prediction_file: Where :meth:`write_predictions` writes (nothing when None).
        collect_device, prefix: As mmengine's ``BaseMetric``.
    """

    def __init__(self, prediction_file: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.prediction_file = prediction_file

    def write_predictions(self, obj: Any, indent: Optional[int] = None) -> None:
        """Dump ``obj`` as JSON to :attr:`prediction_file` (its folder is created)."""
        if not self.prediction_file:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.prediction_file)), exist_ok=True)
        with open(self.prediction_file, 'w') as f:
            json.dump(obj, f, indent=indent)
