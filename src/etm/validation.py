"""Scoring trained models on validation documents: the estimate behind ``etm tune`` and ``n_init``.

Both choose among trained models (a study's trials, or the restarts of
:class:`etm.TopicModel` with ``n_init > 1``) and may only read the corpus's
validation split, never its test split. The score is topic quality over the
validation documents: NPMI coherence of each topic's top 10 words times the
diversity of the top 25 (:mod:`etm.metrics`). The coherence is
:func:`~etm.metrics.topic_coherence`'s estimate with
:data:`VALIDATION_PSEUDO_COUNT` pseudo-documents: a validation split holds a
few thousand documents at most, too few for the authors' convention (a pair
never seen together scores -1), which punishes specific topics: over 1,221 of
20NG's test documents the authors' NPMI ranks sixteen models' quality in no
relation to their order over all 7,531 (Kendall tau 0.06; the estimate 0.93,
docs/guide/tuning.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from etm.corpus import CorpusSource
from etm.metrics import top_word_indices, topic_coherence, topic_diversity, topic_quality

__all__ = ["VALIDATION_PSEUDO_COUNT", "validation_reference", "validation_quality"]

#: Pseudo-documents of the validation coherence estimate (``topic_coherence(..., pseudo_count=)``), chosen by how
#: well quality over a few thousand held-out documents ranks models as all 7,531 of 20NG's test documents do
#: (``benchmarks/heldout_coherence.py --subset``; docs/guide/tuning.md).
VALIDATION_PSEUDO_COUNT = 0.1


def validation_reference(corpus: CorpusSource, *, purpose: str | None = None) -> sp.csr_matrix:
    """The validation documents' counts (D_valid, V), the reference corpus of validation coherence.

    ``purpose`` replaces the opening of the error raised when there are none
    (what needs them); by default it is ``etm tune``'s.
    """
    pieces = [chunk.counts for chunk, _, _ in corpus.document_chunks(100_000, parts=("valid",))]
    if not pieces or sum(p.shape[0] for p in pieces) == 0:
        raise ValueError(f"the corpus has no validation documents; {purpose or 'tuning scores trials'} on held-out "
                         "validation documents: prepare the corpus with a validation split (etm prepare "
                         "--valid-size), or carve one from the training documents with valid_size= (etm tune "
                         "--valid-size)")
    return sp.vstack(pieces, format="csr")


def validation_quality(topic_word: np.ndarray, reference: sp.spmatrix) -> dict[str, float]:
    """Coherence (pseudo-count NPMI of the top 10 over ``reference``), diversity (top 25) and their product."""
    coherence = topic_coherence(top_word_indices(topic_word, 10), reference, pseudo_count=VALIDATION_PSEUDO_COUNT)
    diversity = topic_diversity(top_word_indices(topic_word, 25))
    return {"coherence": coherence, "diversity": diversity, "quality": topic_quality(coherence, diversity)}
