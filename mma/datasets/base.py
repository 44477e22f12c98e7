"""The base of mma's text/image-text datasets: the over-long policy, applied once and counted."""
import logging
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from .transforms import TokenizeForLaVIN


class LaVINDataset(BaseDataset):
    """An mmengine ``BaseDataset`` of ``dict(prompt, answer, img_path, ...)`` samples.

    Subclasses implement :meth:`load_data_list`. After loading, the :class:`TokenizeForLaVIN`
    transform of the pipeline measures every sample (tokenisation is fast: ~0.1 ms per sample):
    samples that are over ``max_len`` are truncated on the prompt side or skipped according to
    its ``overlong`` policy; both are counted and reported in one warning. The measured lengths
    feed :class:`~mma.datasets.LengthGroupedSampler` (:attr:`lengths`).
    """

    def __init__(self, *args, **kwargs):
        self.num_truncated = 0
        self.num_skipped = 0
        # build the pipeline from mma's transforms also outside a Runner (no default scope)
        with DefaultScope.overwrite_default_scope(DefaultScope.get_current_instance() and
                                                  DefaultScope.get_current_instance().scope_name
                                                  or 'mma'):
            super().__init__(*args, **kwargs)

    def _tokenize_transform(self) -> Optional[TokenizeForLaVIN]:
        for t in getattr(self.pipeline, 'transforms', []):
            if isinstance(t, TokenizeForLaVIN):
                return t
        return None

    def filter_data(self) -> List[dict]:
        tok = self._tokenize_transform()
        if tok is None:
            return self.data_list
        kept = []
        for info in self.data_list:
            total, drop, _ = tok.measure(info)
            if drop < 0:
                self.num_skipped += 1
                continue
            self.num_truncated += drop > 0
            info['num_positions'] = total - max(drop, 0)
            kept.append(info)
        if self.num_truncated or self.num_skipped:
            print_log(f'{type(self).__name__}: {self.num_truncated} of {len(self.data_list)} '
                      f'samples exceed max_len={tok.max_len} and had prompt tokens truncated; '
                      f'{self.num_skipped} skipped (policy {tok.overlong!r}; answer tokens are '
                      'never dropped)', logger='current', level=logging.WARNING)
        return kept

    @property
    def lengths(self) -> List[int]:
        """Positions each sample occupies in the model (after the over-long policy)."""
        if not self._fully_initialized:
            self.full_init()
        if self._tokenize_transform() is None:
            raise RuntimeError(f'{type(self).__name__} has no TokenizeForLaVIN in its pipeline; '
                               'lengths are unknown')
        return [self.get_data_info(i)['num_positions'] for i in range(len(self))]
