"""Corpora: from raw documents to bags of words, in memory or in memory-mapped shards.

The modules, lowest first (each imports only those before it):

* :mod:`etm.corpus.memory`: :class:`Corpus`, :class:`PreparedCorpus` (in
  memory), their directory format, :func:`split_halves` and the
  :class:`CorpusSource` protocol that training and evaluation read any corpus through;
* :mod:`etm.corpus.batching`: training batches of either kind of corpus;
* :mod:`etm.corpus.formats`: corpora prepared elsewhere (the ETM authors', OCTIS);
* :mod:`etm.corpus.readers`: raw documents, the split rules, the in-memory ``prepare_corpus``;
* :mod:`etm.corpus.shards`: :class:`ShardedCorpus`, the streaming ``prepare_sharded``,
  :func:`prepare` (one entry point to both pipelines) and :func:`open_corpus`.

The public names are re-exported here; ``etm.readers`` and ``etm.shards``
stay importable as before.
"""

from etm.corpus.formats import read_authors_format, read_octis
from etm.corpus.memory import (
    CORPUS_FORMAT_VERSION,
    Corpus,
    CorpusSource,
    PreparedCorpus,
    check_same_vocabulary,
    split_halves,
)
from etm.corpus.readers import RawDocuments, RawRecord, iter_documents, prepare_corpus, read_documents
from etm.corpus.shards import ShardedCorpus, is_corpus_dir, open_corpus, prepare, write_shards

__all__ = [
    "Corpus",
    "CorpusSource",
    "PreparedCorpus",
    "ShardedCorpus",
    "split_halves",
    "check_same_vocabulary",
    "CORPUS_FORMAT_VERSION",
    "RawDocuments",
    "RawRecord",
    "read_documents",
    "iter_documents",
    "read_authors_format",
    "read_octis",
    "prepare_corpus",
    "prepare",
    "open_corpus",
    "is_corpus_dir",
    "write_shards",
]
