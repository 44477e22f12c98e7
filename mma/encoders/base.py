"""The vision encoder contract: what LaVIN (and any model built on mma) asks of an image encoder.

An encoder is an ``nn.Module`` registered in :data:`mma.registry.ENCODERS` that provides:

* :attr:`width` — the width of each feature vector it returns;
* :attr:`num_features` — how many feature vectors one image gives with the current config (LaVIN's
  visual tokens; the data pipeline derives its token budget from it);
* :meth:`features` — ``(B, 3, H, W)`` images to ``(B, num_features, width)`` features;
* :attr:`image_size` — the ``(H, W)`` the encoder expects (the data pipeline resizes to it);
* :attr:`image_mean` / :attr:`image_std` — the per-channel normalisation (in [0, 1] units) its
  weights were trained with, or None when it has none to say (the pipeline keeps its own);
* :meth:`adapter_slots` — where adapters go for a placement name, as :class:`~mma.slots.AdapterSlot` s;
* :attr:`weights_path` / :meth:`load_pretrained` — the local weights file it reads (None for random
  weights) and the call that reads it (never at construction).

Adapters are put into an encoder by replacing a submodule with an
:class:`~mma.adapters.AdaptedModule` that wraps it (the encoder need not know adapters exist).
"""
from typing import List, Optional, Tuple

from torch import Tensor, nn

from mma.slots import AdapterSlot


class VisionEncoder(nn.Module):
    """Base class documenting the encoder contract (see the module docstring)."""

    @property
    def width(self) -> int:
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> Tuple[int, int]:
        raise NotImplementedError

    @property
    def image_mean(self) -> Optional[Tuple[float, ...]]:
        return None

    @property
    def image_std(self) -> Optional[Tuple[float, ...]]:
        return None

    @property
    def weights_path(self) -> Optional[str]:
        return None

    def features(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_features, width)``."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        raise NotImplementedError

    def load_pretrained(self) -> None:
        """Read :attr:`weights_path` (if any) into the encoder."""
