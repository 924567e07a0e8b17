"""PyTorch adapter (optional extra ``geoduck[torch]``): chips → samples for a ``DataLoader``.

Importing :mod:`geoduck` never imports torch; this module does, when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("geoduck.torch needs PyTorch: pip install 'geoduck[torch]'") from exc

from .catalog import Catalog
from .samplers import shard
from .slices import GeoSlice

__all__ = ["GeoIterableDataset", "shard"]


class GeoIterableDataset(IterableDataset):
    """Yields ``loader(catalog, slice)`` for every slice of ``sampler``, split across workers.

    Each ``DataLoader`` worker (``torch.utils.data.get_worker_info()``) and, when
    ``torch.distributed`` is initialised, each rank takes every ``n``-th slice (see
    :func:`geoduck.samplers.shard`), so an epoch yields every slice exactly once.

    Args:
        catalog: the catalog handed to ``loader``.
        sampler: a re-iterable of GeoSlices, e.g. :func:`geoduck.random_sampler` (a sequence:
            workers index their slices directly) or a list from :func:`geoduck.grid_sampler`.
        loader: ``(catalog, slice) -> sample``, e.g. ``functools.partial(geoduck.load_raster,
            bands=[1, 2, 3])``; return arrays/tensors (or dicts of them) for the default collate.
    """

    def __init__(
        self, catalog: Catalog, sampler: Iterable[GeoSlice], loader: Callable[[Catalog, GeoSlice], Any]
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.sampler = sampler
        self.loader = loader
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``sampler.reseed(sampler.seed + epoch)`` from now on, when the sampler supports it
        (random samplers do), so every epoch draws new chips; other samplers are unchanged."""
        self.epoch = int(epoch)

    def _slices(self) -> Iterable[GeoSlice]:
        reseed = getattr(self.sampler, "reseed", None)
        seed = getattr(self.sampler, "seed", None)
        if self.epoch and reseed is not None and seed is not None:
            return reseed(seed + self.epoch)
        return self.sampler

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            worker, workers = rank * workers + worker, world * workers
        for sl in shard(self._slices(), worker, workers):
            yield self.loader(self.catalog, sl)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]
