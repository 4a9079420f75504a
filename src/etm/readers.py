"""``etm.readers``, the documented path of :mod:`etm.corpus.readers` (raw documents, prepared-elsewhere corpora)."""

from etm.corpus import readers as _readers
from etm.corpus.readers import *  # noqa: F403 - the same public names as etm.corpus.readers

__all__ = list(_readers.__all__)
