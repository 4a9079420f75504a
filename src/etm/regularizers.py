"""Regularisers added to the training loss, beside the ELBO.

:class:`EmbeddingClustering` is the embedding-clustering regulariser of ECRTM
(Wu et al., "Effective Neural Topic Modeling with Embedding Clustering
Regularization", ICML 2023), on exactly ETM's embeddings: topic embeddings
``alpha`` (K x E) are cluster centres, word embeddings ``rho`` (V x E) the
samples, and an entropic optimal-transport plan (each topic gets 1/K of the
words' mass; each word gives an equal share, ECRTM's, or one growing with
its frequency, :func:`word_mass`) assigns words to topics. Its
transport cost pulls every topic towards a distinct cluster of words, which
is what keeps topics from collapsing onto the same frequent words.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["sinkhorn", "sinkhorn_from", "squared_distances", "transport_costs", "EmbeddingClustering", "word_mass",
           "combine", "reads_logits", "reads_topics", "reset_state", "state_of", "load_state"]


def squared_distances(x: torch.Tensor, y: torch.Tensor, products: torch.Tensor | None = None) -> torch.Tensor:
    """``||x_i - y_j||^2`` for every row pair, shape (len(x), len(y)); ``products``: ``x @ y.T`` if known."""
    return (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2.0 * (x @ y.T if products is None else products)


@torch.no_grad()
def sinkhorn(cost: torch.Tensor, *, alpha: float = 20.0, max_iter: int = 1000, tol: float = 5e-3,
             check_every: int = 5) -> torch.Tensor:
    """The entropic transport plan between uniform marginals for ``cost`` (n x m), as ECRTM computes it.

    Sinkhorn's scaling iterations on ``exp(-alpha * cost)``, in float64 and
    with the cost shifted by its minimum (which leaves the plan unchanged)
    so that the kernel does not underflow; they stop when the column
    marginals are within ``tol`` (L1) of uniform, or after ``max_iter``.
    The plan's rows sum to 1/n and its columns to 1/m.
    """
    return sinkhorn_from(cost, None, alpha=alpha, max_iter=max_iter, tol=tol, check_every=check_every)[0]


@torch.no_grad()
def sinkhorn_from(cost: torch.Tensor, start: torch.Tensor | None, *, alpha: float = 20.0, max_iter: int = 1000,
                  tol: float = 5e-3, check_every: int = 5,
                  columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sinkhorn` started from the row scaling ``start`` (n,) of a previous plan; returns (plan, scaling).

    ``columns``: the column marginals (m,), summing to 1 (default uniform).

    Why: a training step moves the embeddings a little, so the previous
    step's scaling is nearly right; started from it the iterations stop
    after 5-10 instead of 45-75 (20NG, K = 50). Its overall scale does not
    matter (the first column update absorbs it), so a change of the cost's
    minimum between steps is harmless.
    """
    c = cost.detach().double()
    kernel = torch.exp(-alpha * (c - c.min()))
    n, m = kernel.shape
    a = torch.full((n,), 1.0 / n, dtype=torch.float64, device=c.device)
    b = torch.full((m,), 1.0 / m, dtype=torch.float64, device=c.device) if columns is None else columns.to(a)
    u = torch.full_like(a, 1.0 / n) if start is None else start.to(a)
    tiny = 1e-300
    for i in range(max_iter):
        v = b / (kernel.T @ u + tiny)
        u = a / (kernel @ v + tiny)
        if (i + 1) % check_every == 0:
            reached = v * (kernel.T @ u)  # the plan's column sums
            if float((reached - b).abs().sum()) < tol:
                break
    return (u[:, None] * kernel * v[None, :]).to(cost.dtype), u


def transport_costs(model: Any, logits: torch.Tensor | None = None) -> torch.Tensor:
    """The (K, V) cost between topic and word embeddings that :class:`EmbeddingClustering` transports.

    Squared distances between the embeddings, on the unit sphere when the
    model's logits are cosines (``2 - 2 cos``). ``logits``: the step's (V, K)
    :meth:`ETM._logits`, when the training step has them; the cost is then
    read off them (``cos = t * logits``; for dot logits ``|a|^2 + |r|^2 -
    2 logits``) instead of normalising the (V, E) embeddings and multiplying
    them again, which was most of the term's time.
    """
    alphas, rho = model.alphas.weight, model.rho.weight
    cosine = getattr(model, "similarity", "dot") == "cosine"
    if logits is None:
        if cosine:  # cluster on the unit sphere, where the logits live
            alphas, rho = F.normalize(alphas, dim=1), F.normalize(rho, dim=1)
        return squared_distances(alphas, rho)
    if cosine:  # unit vectors: 1 + 1 - 2 cos
        return 2.0 - (2.0 * model.temperature) * logits.t()
    return squared_distances(alphas, rho, logits.t())


def word_mass(word_totals: Any, kind: str) -> torch.Tensor | None:
    """Each word's share of the transported mass, (V,), from its training count: None for ``"uniform"``.

    ``"sqrt-frequency"``: proportional to the square root of the count (plus
    one). Why: with uniform mass every topic must take 1/K of the
    vocabulary, rare words included, and a topic pulled towards a set of
    rare words mixes themes when topics are few (20NG, K = 20); frequent
    words, the ones a topic's top words are made of, weigh more instead.
    """
    if kind == "uniform":
        return None
    if kind != "sqrt-frequency":
        raise ValueError(f"word mass must be 'uniform' or 'sqrt-frequency', got {kind!r}")
    totals = torch.as_tensor(word_totals, dtype=torch.float64).reshape(-1)
    mass = (totals.clamp(min=0) + 1.0).sqrt()
    return mass / mass.sum()


class EmbeddingClustering:
    """ECRTM's embedding-clustering regulariser as a training-loop regulariser.

    Returns ``weight * sum(plan * cost)`` with ``cost`` the squared distances
    between topic and word embeddings and ``plan`` their Sinkhorn transport
    plan (:func:`transport_costs`). With ``similarity="cosine"`` the
    embeddings are normalised first (``cost = 2 - 2 cos``): the clusters are
    then those of the cosines the decoder reads, not of raw vectors whose
    lengths the decoder ignores. The plan is held fixed in the gradient (the
    envelope-theorem gradient of the transport cost), so a step costs a few
    hundred (K x V) products and no graph through the iterations. In
    training it reads the step's logits (``reads_logits``) rather than
    computing them again.

    Args:
        weight (float): multiplier of the transport cost (ECRTM's
            ``weight_loss_ECR``).
        alpha (float): inverse entropic temperature (ECRTM's
            ``sinkhorn_alpha``, default 20).
        word_mass (tensor, optional): each word's share of the mass
            transported (V,), e.g. :func:`word_mass` of the corpus; uniform
            (ECRTM's) when None.
    """

    reads_topics = False  # it reads the embeddings, not the step's topic-word distributions
    reads_logits = True  # ... through the step's logits, when the loop passes them

    def __init__(self, weight: float, alpha: float = 20.0, *, word_mass: torch.Tensor | None = None,
                 max_iter: int = 1000, tol: float = 5e-3) -> None:
        self.weight, self.alpha, self.max_iter, self.tol = float(weight), float(alpha), int(max_iter), float(tol)
        self.word_mass = None if word_mass is None else (word_mass.double() / word_mass.double().sum())
        self._scaling: torch.Tensor | None = None  # the last plan's row scaling: the next step starts from it

    def __call__(self, model: Any, progress: float, batch: Any, mu: torch.Tensor, beta: torch.Tensor, *,
                 logits: torch.Tensor | None = None) -> torch.Tensor:
        cost = transport_costs(model, logits)
        plan, self._scaling = sinkhorn_from(cost, self._scaling, alpha=self.alpha, max_iter=self.max_iter,
                                            tol=self.tol, columns=self.word_mass)
        return self.weight * (plan * cost).sum()

    # The warm start is state: a checkpoint keeps it so that a resumed run takes the same steps.
    def reset(self) -> None:
        """Start the next plan cold (a new training run)."""
        self._scaling = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self._scaling is None else {"scaling": self._scaling.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._scaling = state.get("scaling")


class _Sum:
    """The sum of several regularisers, as :func:`combine` returns it; passes on what each one reads and keeps."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.reads_topics = any(reads_topics(r) for r in parts)
        self.reads_logits = any(reads_logits(r) for r in parts)

    def __call__(self, *args: Any, logits: torch.Tensor | None = None) -> torch.Tensor | None:
        calls = (r(*args, logits=logits) if reads_logits(r) else r(*args) for r in self.parts)
        terms = [t for t in calls if t is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def reset(self) -> None:
        for r in self.parts:
            reset_state(r)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{i}.{k}": v for i, r in enumerate(self.parts) for k, v in state_of(r).items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for i, r in enumerate(self.parts):
            load_state(r, {k[len(f"{i}."):]: v for k, v in state.items() if k.startswith(f"{i}.")})


def combine(*regularizers: Any) -> Any:
    """One regulariser summing the given ones (None entries skipped); None when there are none."""
    active = [r for r in regularizers if r is not None]
    if not active:
        return None
    return active[0] if len(active) == 1 else _Sum(active)


# A regulariser is any callable; one with state between steps says so with these methods (all optional).
def reset_state(regularizer: Any) -> None:
    """Forget state from an earlier training run (called when a run starts)."""
    if hasattr(regularizer, "reset"):
        regularizer.reset()


def state_of(regularizer: Any) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint must keep for a resumed run to take the same steps ({} when stateless)."""
    return dict(regularizer.state_dict()) if hasattr(regularizer, "state_dict") else {}


def load_state(regularizer: Any, state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`state_of` returned (from a checkpoint)."""
    if hasattr(regularizer, "load_state_dict"):
        regularizer.load_state_dict(state)


def reads_logits(regularizer: Any) -> bool:
    """Whether ``regularizer`` takes the step's (V, K) topic-word logits as ``logits=``; False unless it says so."""
    return regularizer is not None and bool(getattr(regularizer, "reads_logits", False))


def reads_topics(regularizer: Any) -> bool:
    """Whether ``regularizer`` reads the step's topic-word matrix (its ``beta`` argument); True unless it says not.

    Why: the product decoder computes that (K, V) matrix only for a regulariser that reads it.
    """
    return regularizer is not None and bool(getattr(regularizer, "reads_topics", True))
