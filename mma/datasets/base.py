"""The base of mma's text/image-text datasets: the over-long policy, applied once and counted."""
import logging
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from mma.errors import MMAUserError

from .transforms import TokenizeForLaVIN


class LaVINDataset(BaseDataset):
    """An mmengine ``BaseDataset`` of ``dict(prompt, answer, img_path, ...)`` samples.

    Subclasses implement :meth:`load_data_list`. After loading, the :class:`TokenizeForLaVIN`
    transform of the pipeline measures every sample (tokenisation is fast: ~0.1 ms per sample):
    samples that are over ``max_len`` are truncated on the prompt side or skipped according to
    its ``overlong`` policy; both are counted and reported in one warning. The measured lengths
    feed :class:`~mma.datasets.LengthGroupedSampler` (:attr:`lengths`).
    """

    #: Over-long samples named in the warning (all of them are in :attr:`truncated_qids` /
    #: :attr:`skipped_qids`; training writes them to ``WORK_DIR/overlong_samples.txt``).
    SHOW_QIDS = 10

    def __init__(self, *args, **kwargs):
        self.truncated_qids: List[str] = []
        self.skipped_qids: List[str] = []
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

    @property
    def num_truncated(self) -> int:
        return len(self.truncated_qids)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_qids)

    def _source(self) -> str:
        """Where the samples come from, for error messages."""
        return ', '.join(f'{k}={getattr(self, k)!r}' for k in ('data_root', 'ann_file', 'split')
                         if getattr(self, k, None))

    def filter_data(self) -> List[dict]:
        name = type(self).__name__
        if not self.data_list:
            raise MMAUserError(f'{name} ({self._source()}) has no samples: check the data file '
                               'and the split')
        tok = self._tokenize_transform()
        if tok is None:
            return self.data_list
        kept = []
        for i, info in enumerate(self.data_list):
            total, drop, _ = tok.measure(info)
            qid = str(info.get('qid', i))
            if drop < 0:
                self.skipped_qids.append(qid)
                continue
            if drop > 0:
                self.truncated_qids.append(qid)
            info['num_positions'] = total - max(drop, 0)
            kept.append(info)
        if self.num_truncated or self.num_skipped:
            n = self.SHOW_QIDS
            print_log(f'{name}: {self.num_truncated} of {len(self.data_list)} samples exceed '
                      f'max_len={tok.max_len} and had prompt tokens truncated '
                      f'{self.truncated_qids[:n]}; {self.num_skipped} skipped '
                      f'{self.skipped_qids[:n]} (policy {tok.overlong!r}; answer tokens are never '
                      f'dropped; first {n} qids shown, training lists all in '
                      'WORK_DIR/overlong_samples.txt)', logger='current', level=logging.WARNING)
        if not kept:
            raise MMAUserError(f'{name} ({self._source()}): all {len(self.data_list)} samples '
                               f'exceed max_len={tok.max_len} and were skipped (policy '
                               f"{tok.overlong!r}); raise the pipeline's TokenizeForLaVIN "
                               "max_len or use overlong='truncate_prompt'")
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
