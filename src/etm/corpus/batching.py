"""Where training batches come from: an in-memory CSR matrix or memory-mapped shards.

Both sources give every rank of a data-parallel run its own documents and the
same number of steps per epoch (``torch.distributed`` collectives need every
rank at every step), and both reshuffle every epoch deterministically from the
seed, so a run is reproducible for a given number of processes. A last batch
that would give a rank fewer than two documents is skipped for that epoch (its
documents come in another epoch's shuffle): the product decoder's batch
normalisation cannot take statistics of one document.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["InMemoryBatches", "ShardedBatches", "batch_source", "completion_chunks"]


def check_shards_for_processes(n_shards: int, world: int) -> None:
    """Refuse ``world`` data-parallel processes on fewer training shards: each process reads its own."""
    if world > n_shards:
        raise ValueError(
            f"the corpus has {n_shards} training shards but {world} processes: every process needs "
            "its own shards; prepare the corpus again with a smaller --shard-size"
        )


def _steps(n_docs: int, batch_size: int, world: int) -> int:
    """Steps an epoch when a last batch that would leave a rank one document or none is skipped (module doc)."""
    steps = math.ceil(n_docs / batch_size)
    if steps > 1 and n_docs - (steps - 1) * batch_size < 2 * world:
        steps -= 1
    return steps


class InMemoryBatches:
    """Batches of a CSR matrix held in memory.

    One permutation of all documents per epoch (drawn from ``generator``, the
    authors' scheme); with ``world`` processes each global batch of
    ``batch_size`` documents is dealt out row by row, so the ranks together
    take exactly the steps one process would.
    """

    def __init__(self, counts: sp.csr_matrix, generator: torch.Generator) -> None:
        self.counts = sp.csr_matrix(counts, dtype=np.float32)
        self.generator = generator
        self.n_docs = int(self.counts.shape[0])

    def n_steps(self, batch_size: int, world: int = 1, epoch: int = 0) -> int:
        return _steps(self.n_docs, batch_size, world)

    def epoch(self, epoch: int, batch_size: int, rank: int = 0, world: int = 1, start: int = 0
              ) -> Iterator[sp.csr_matrix]:
        """The epoch's batches from step ``start`` on (the order is drawn whole, so resuming mid-epoch agrees)."""
        order = torch.randperm(self.n_docs, generator=self.generator).numpy()
        for step in range(start, self.n_steps(batch_size, world)):
            idx = order[step * batch_size : (step + 1) * batch_size]
            yield self.counts[idx[rank::world] if world > 1 else idx]


class ShardedBatches:
    """Batches read from memory-mapped shards (:class:`etm.shards.ShardedCorpus`).

    Every epoch the shards are shuffled and dealt out to the ranks (rank r
    reads shards r, r + world, ... of that order, and no other); each rank
    visits its shards in turn, rows shuffled within each shard, in batches of
    ``batch_size // world`` documents, so the global batch keeps its size.
    Ranks take the same number of steps: the smallest rank's count; the few
    documents a larger rank has beyond that wait for a later epoch (the deal
    changes every epoch). Shuffles derive from (seed, epoch, shard), so no
    shuffling state needs saving to resume.
    """

    def __init__(self, shards: list[Any], seed: int) -> None:
        self.shards = shards
        self.seed = int(seed)
        self.n_docs = sum(s.n_docs for s in shards)

    def _deal(self, epoch: int, world: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        return [list(order[r::world]) for r in range(world)]

    def n_steps(self, batch_size: int, world: int = 1, epoch: int = 0) -> int:
        check_shards_for_processes(len(self.shards), world)
        local = max(1, batch_size // world)
        if world == 1:
            return _steps(self.n_docs, local, 1)
        return min(sum(self.shards[i].n_docs for i in mine) // local for mine in self._deal(epoch, world))

    def epoch(self, epoch: int, batch_size: int, rank: int = 0, world: int = 1, start: int = 0
              ) -> Iterator[sp.csr_matrix]:
        """The epoch's batches from step ``start`` on (earlier ones are assembled and dropped)."""
        for step, batch in enumerate(self._epoch(epoch, batch_size, rank, world)):
            if step >= start:
                yield batch

    def _epoch(self, epoch: int, batch_size: int, rank: int, world: int) -> Iterator[sp.csr_matrix]:
        local = max(1, batch_size // world)
        steps = self.n_steps(batch_size, world, epoch)
        pending: list[sp.csr_matrix] = []
        n_pending = 0
        done = 0
        for i in self._deal(epoch, world)[rank]:
            shard = self.shards[i]
            rows = np.random.default_rng([self.seed, epoch, int(i)]).permutation(shard.n_docs)
            start = 0
            while start < shard.n_docs and done < steps:
                take = rows[start : start + local - n_pending]
                start += take.size
                pending.append(shard.rows(take))
                n_pending += take.size
                if n_pending == local:
                    yield pending[0] if len(pending) == 1 else sp.vstack(pending, format="csr")
                    pending, n_pending, done = [], 0, done + 1
            if done == steps:
                return
        if pending and done < steps:
            yield sp.vstack(pending, format="csr")


def batch_source(corpus: Any, generator: torch.Generator, seed: int) -> InMemoryBatches | ShardedBatches:
    """The batch source of any :class:`~etm.corpus.CorpusSource` (in memory or sharded): ``corpus.batches``."""
    return corpus.batches(generator, seed)


def completion_chunks(corpus: Any, part: str = "valid") -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """Document-completion halves of ``part`` as (first, second) pairs; empty when there are none."""
    return [pair for pair in corpus.completion_chunks(part) if pair[0].shape[0] > 0]
