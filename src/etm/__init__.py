"""etm: the Embedded Topic Model (Dieng, Ruiz & Blei, TACL 2020), sparse, safe and easy to use.

Faces:

* :class:`TopicModel`: scikit-learn-style estimator (``fit`` / ``transform``);
* :class:`ETM`: the ``torch.nn.Module`` with the authors' names;
* :class:`Corpus`, :class:`PreparedCorpus`, :class:`Preprocessor` and the
  readers in :mod:`etm.readers`: from raw text to sparse bags of words;
* :func:`open_corpus`: any prepared corpus directory (``etm prepare``'s, a
  sharded one staying on disk, see :mod:`etm.shards`; the authors'; OCTIS),
  as a :class:`CorpusSource`, the interface both corpus kinds implement;
* :mod:`etm.metrics`: perplexity, coherence, diversity, quality;
* the ``etm`` command line (:mod:`etm.cli`).
"""

from etm._version import __version__
from etm.corpus import Corpus, CorpusSource, PreparedCorpus, open_corpus
from etm.device import resolve_device
from etm.estimator import TopicModel
from etm.model import ETM
from etm.preprocessing import Preprocessor
from etm.training import TrainingConfig, TrainingDivergedError, train

__all__ = [
    "ETM",
    "TopicModel",
    "Corpus",
    "PreparedCorpus",
    "CorpusSource",
    "open_corpus",
    "Preprocessor",
    "TrainingConfig",
    "TrainingDivergedError",
    "train",
    "resolve_device",
    "__version__",
]
