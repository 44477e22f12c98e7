"""Up-front checks of a data set: every sample loads, every image opens, the tokenizer fits.

Used by ``tools/train.py --check`` (:func:`mma.engine.preflight.preflight`) and by
:class:`mma.engine.hooks.VocabCheckHook`; building a dataset already checks its files, qids,
questions, answers and prompt format (:class:`~mma.datasets.ScienceQADataset`), reporting every
bad record of a file at once (:class:`~mma.datasets.record_errors.RecordErrors`).
"""
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.dataset import ConcatDataset

from .prompt_dataset import PromptDataset
from .record_errors import DataValidationError, RecordErrors  # noqa: F401 (re-exported)
from .transforms import TokenizeForLaVIN, read_rgb


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


def _image_error(path: str, qid) -> Optional[str]:
    try:
        read_rgb(path, sample=qid)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    return None


def image_errors(images: Sequence[Tuple[str, object]], workers: int = 1) -> List[str]:
    """Open every ``(path, qid)`` fully; the error of each one that cannot be used, in order.

    ``workers`` threads share the work (PIL decodes without holding the GIL).
    """
    if workers <= 1 or len(images) < 2:
        found = [_image_error(p, q) for p, q in images]
    else:
        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(lambda pq: _image_error(*pq), images))
    return [e for e in found if e is not None]


def raise_image_errors(errors: List[str], where: str, max_errors: int = 20) -> None:
    """One :class:`DataValidationError` listing (up to ``max_errors`` of) ``errors``."""
    if errors:
        more = f' (and {len(errors) - max_errors} more)' if len(errors) > max_errors else ''
        raise DataValidationError(f'{where}: {len(errors)} images cannot be used{more}:\n  ' +
                                  '\n  '.join(errors[:max_errors]))


def dataset_images(dataset) -> Tuple[Dict[str, int], List[Tuple[str, object]]]:
    """``(counts, [(img_path, qid), ...])`` of ``dataset`` and each part of a ``ConcatDataset``;
    counts: ``dict(samples, image_samples, text_samples, truncated, skipped)``."""
    counts = dict(samples=0, image_samples=0, text_samples=0, truncated=0, skipped=0)
    images = []
    for d in dataset_parts(dataset):
        for s in _samples(d):
            counts['samples'] += 1
            path = s.get('img_path')
            counts['image_samples' if path else 'text_samples'] += 1
            if path:
                images.append((path, s.get('qid')))
        counts['truncated'] += getattr(d, 'num_truncated', 0)
        counts['skipped'] += getattr(d, 'num_skipped', 0)
    return counts, images


def validate_dataset(dataset, where: str = 'dataset', open_images: bool = True,
                     max_errors: int = 20, workers: int = 1) -> Dict[str, int]:
    """Open every image of ``dataset`` (and of each part of a ``ConcatDataset``) and count.

    Returns:
        ``dict(samples, image_samples, text_samples, truncated, skipped)``.

    Raises:
        DataValidationError: listing (up to ``max_errors``) missing or unreadable images by
            sample id and path.
    """
    counts, images = dataset_images(dataset)
    if open_images:
        raise_image_errors(image_errors(images, workers), where, max_errors)
    return counts
