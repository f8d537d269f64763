"""Resumable batch streams for training, over any sample kind.

Every random choice of a sample's preparation comes from a generator seeded by the sample's place
in its stream, so a resumed run (which skips what it consumed) sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from hi3dgen.data.webds import worker_skip


def collate(views: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([v[k] for v in views])) for k in views[0]}


def stream_info() -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers) of the calling DataLoader worker (or main process)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    info = torch.utils.data.get_worker_info()
    return (rank, world, info.id, info.num_workers) if info else (rank, world, 0, 1)


class ListStream(torch.utils.data.IterableDataset):
    """In-memory samples with the partition and resume contract of `hi3dgen.data.webds.view_dataset`
    (resampled): every epoch a (seed, epoch) permutation; stream (rank, worker) takes every
    (world * workers)-th item; `start` samples consumed by this rank are skipped."""

    def __init__(self, samples: list[dict], seed: int, start: int, batch_size: int):
        if not samples:
            raise ValueError("no samples")
        self.samples, self.seed, self.start, self.batch_size = samples, seed, start, batch_size

    def __iter__(self):

        rank, world, worker, workers = stream_info()
        streams, me = world * workers, rank * workers + worker
        skip = worker_skip(self.start, self.batch_size, worker, workers)
        n, epoch = len(self.samples), 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
            for i in range(me, n, streams):
                if skip:
                    skip -= 1
                else:
                    yield self.samples[order[i]]
            epoch += 1


class Prepared(torch.utils.data.IterableDataset):
    """Maps `prepare(sample, rng=...)` over a stream; sample k of stream (rank, worker) draws from a
    generator seeded by (seed, rank, worker, k), k counted from the start of training, so resuming
    replays it."""

    def __init__(self, stream: torch.utils.data.IterableDataset, prepare, seed: int, start: int, batch_size: int):
        self.stream, self.prepare, self.seed = stream, prepare, seed
        self.start, self.batch_size = start, batch_size

    def __iter__(self):

        rank, _, worker, workers = stream_info()
        k = worker_skip(self.start, self.batch_size, worker, workers)
        for sample in self.stream:
            yield self.prepare(sample, rng=np.random.default_rng([self.seed, rank, worker, k]))
            k += 1


class Batches:
    """An endless, resumable iterator of prepared batches through a DataLoader (any sample kind).

    `open_stream(start)` returns an endless IterableDataset of this rank's samples after the
    `start` it already consumed (the contract of `view_dataset(..., resampled=True, start=...)`);
    `prepare(sample, rng=...)` turns a sample into a dict of equally shaped arrays. The position is
    the count of samples consumed; resuming needs the same `workers`.
    """

    def __init__(
        self, open_stream, batch_size: int, prepare, seed: int = 0, workers: int = 0, pin_memory: bool = False
    ):
        self.open_stream, self.prepare = open_stream, prepare
        self.batch_size, self.seed = batch_size, seed
        self.workers, self.pin_memory = workers, pin_memory
        self.consumed = 0
        self._it = None

    def _loader(self) -> torch.utils.data.DataLoader:
        data = Prepared(self.open_stream(self.consumed), self.prepare, self.seed, self.consumed, self.batch_size)
        return torch.utils.data.DataLoader(
            data,
            batch_size=self.batch_size,
            num_workers=self.workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # keep the global RNG (noise) untouched
        )

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._it is None:
            self._it = iter(self._loader())
        batch = next(self._it)
        self.consumed += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self._it = None
