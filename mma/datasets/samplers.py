"""A length-grouped sampler: batches of similar length, deterministic, distributed-aware."""
import math
from typing import Iterator, List, Optional

import torch
from mmengine.dataset import ConcatDataset
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mma.registry import DATA_SAMPLERS


def dataset_lengths(dataset) -> List[int]:
    """Per-sample lengths of an mma dataset, or of an mmengine ``ConcatDataset`` of them."""
    if isinstance(dataset, ConcatDataset):
        return [n for d in dataset.datasets for n in dataset_lengths(d)]
    if not hasattr(dataset, 'lengths'):
        raise TypeError(f'{type(dataset).__name__} has no `lengths`; LengthGroupedSampler needs '
                        'an mma dataset (LaVINDataset) or a ConcatDataset of them')
    return list(dataset.lengths)


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(Sampler):
    """Shuffle, then group samples of similar length into the same batch on every rank.

    Each epoch: a seeded permutation is cut into mega-batches of ``batch_size * world_size *
    mega_batch_mult`` samples, each sorted by length (longest first) and cut into global batches
    of ``batch_size * world_size``; the global batches are shuffled (seeded) and rank r takes
    slice ``[r * batch_size, (r + 1) * batch_size)`` of each. Padding is then small within every
    per-device batch, and the order depends only on (seed, epoch), so resuming or re-running
    reproduces it. Like mmengine's ``DefaultSampler``, the index list is padded by repetition so
    that every rank gets the same number of samples.

    Args:
        dataset: An mma dataset (or a ConcatDataset of them).
        batch_size: Per-device batch size (must equal the dataloader's).
        mega_batch_mult: Mega-batch size in global batches.
        shuffle: False keeps the dataset order (no grouping).
        seed: Random seed (synchronised across ranks); None draws one.
    """

    def __init__(self, dataset, batch_size: int, mega_batch_mult: int = 50, shuffle: bool = True,
                 seed: Optional[int] = None):
        self.dataset = dataset
        self.rank, self.world_size = get_dist_info()
        self.batch_size, self.mega_batch_mult, self.shuffle = batch_size, mega_batch_mult, shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.lengths = dataset_lengths(dataset)
        global_batch = batch_size * self.world_size
        self.total_size = math.ceil(len(self.lengths) / global_batch) * global_batch
        self.num_samples = self.total_size // self.world_size

    def global_order(self) -> List[int]:
        """All ranks' indices, ``total_size`` long, as global batches one after the other."""
        n, gb = len(self.lengths), self.batch_size * self.world_size
        if not self.shuffle:
            idx = list(range(n))
        else:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(n, generator=g).tolist()
            mega = gb * self.mega_batch_mult
            idx = []
            for s in range(0, n, mega):
                idx += sorted(perm[s:s + mega], key=lambda i: -self.lengths[i])
        idx = (idx * math.ceil(self.total_size / max(n, 1)))[:self.total_size]
        batches = [idx[s:s + gb] for s in range(0, self.total_size, gb)]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch + 1_000_003)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return [i for b in batches for i in b]

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        gb, bs, r = self.batch_size * self.world_size, self.batch_size, self.rank
        return iter([i for s in range(0, len(order), gb)
                     for i in order[s + r * bs:s + (r + 1) * bs]])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
