"""``etm.shards``, the documented path of :mod:`etm.corpus.shards` (sharded corpora, ``prepare``, ``open_corpus``)."""

from etm.corpus import shards as _shards
from etm.corpus.shards import *  # noqa: F403 - the same public names as etm.corpus.shards

__all__ = list(_shards.__all__)
