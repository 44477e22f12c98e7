"""Up-front checks of a data set: every sample loads, every image opens, the tokenizer fits.

Used by ``tools/train.py --check`` (:func:`mma.engine.preflight.preflight`) and by
:class:`mma.engine.hooks.VocabCheckHook`; building a dataset already checks its files, qids,
questions, answers and prompt format (:class:`~mma.datasets.ScienceQADataset`).
"""
from typing import Dict, List, Tuple

from mmengine.dataset import ConcatDataset

from mma.errors import MMAUserError

from .prompt_dataset import PromptDataset
from .transforms import TokenizeForLaVIN, read_rgb


class DataValidationError(MMAUserError):
    """A data set has samples that would fail (or silently go wrong) during training."""


def dataset_parts(dataset) -> list:
    if isinstance(dataset, ConcatDataset):
        return [p for d in dataset.datasets for p in dataset_parts(d)]
    return [dataset]


def dataset_tokenizers(dataset) -> List[Tuple[str, object]]:
    """``(dataset name, tokenizer)`` of every :class:`TokenizeForLaVIN` in the pipelines."""
    out = []
    for d in dataset_parts(dataset):
        if isinstance(d, PromptDataset):
            out.append((type(d).__name__, d.tokenizer))
        for t in getattr(getattr(d, 'pipeline', None), 'transforms', []):
            if isinstance(t, TokenizeForLaVIN):
                out.append((type(d).__name__, t.tokenizer))
    return out


def check_dataset_vocab(dataset, vocab_size: int, where: str = 'dataset') -> None:
    """Raise ``ValueError`` when a pipeline tokenizer's vocabulary is not the LLM's."""
    from mma.llms.checkpoints import check_tokenizer_vocab
    for name, tok in dataset_tokenizers(dataset):
        check_tokenizer_vocab(tok, vocab_size, f'the LLM (model.llm; tokenizer of {where} '
                              f'{name})')


def _samples(dataset) -> List[dict]:
    if isinstance(dataset, PromptDataset):
        return [dict(r, qid=r.get('qid', i)) for i, r in enumerate(dataset.records)]
    if not dataset._fully_initialized:
        dataset.full_init()
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def validate_dataset(dataset, where: str = 'dataset', open_images: bool = True,
                     max_errors: int = 20) -> Dict[str, int]:
    """Open every image of ``dataset`` (and of each part of a ``ConcatDataset``) and count.

    Returns:
        ``dict(samples, image_samples, text_samples, truncated, skipped)``.

    Raises:
        DataValidationError: listing (up to ``max_errors``) missing or unreadable images by
            sample id and path.
    """
    counts = dict(samples=0, image_samples=0, text_samples=0, truncated=0, skipped=0)
    errors: List[str] = []
    for d in dataset_parts(dataset):
        for s in _samples(d):
            counts['samples'] += 1
            path = s.get('img_path')
            counts['image_samples' if path else 'text_samples'] += 1
            if path and open_images:
                try:
                    read_rgb(path, sample=s.get('qid'))
                except (FileNotFoundError, ValueError) as err:
                    errors.append(str(err))
        counts['truncated'] += getattr(d, 'num_truncated', 0)
        counts['skipped'] += getattr(d, 'num_skipped', 0)
    if errors:
        more = f' (and {len(errors) - max_errors} more)' if len(errors) > max_errors else ''
        raise DataValidationError(f'{where}: {len(errors)} images cannot be used{more}:\n  ' +
                                  '\n  '.join(errors[:max_errors]))
    return counts
