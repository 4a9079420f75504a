"""Inference with a trained :class:`etm.ETM`: topic proportions and document-completion scores.

Batches are CSR row slices turned into :class:`etm.model.SparseBatch`; nothing
densifies the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from etm.metrics import CompletionScores, completion_loglik, perplexity_per_document, perplexity_per_token
from etm.model import ETM, SparseBatch

__all__ = ["infer_theta", "get_topic_word", "evaluate_completion", "evaluate_completion_chunks", "encoder_input",
           "decoder_loglik"]


def _batches(
    counts: sp.csr_matrix, batch_size: int, device: torch.device, order: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, SparseBatch]]:
    n = counts.shape[0]
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield idx, SparseBatch.from_scipy(counts[idx], device=device)


def encoder_input(batch: SparseBatch, bow_norm: bool, device: torch.device) -> SparseBatch | torch.Tensor:
    inp = batch.normalized() if bow_norm else batch
    # MPS has no embedding_bag with per-sample weights: densify the batch (never the corpus).
    return inp.to_dense() if device.type == "mps" else inp


@torch.no_grad()
def infer_theta(
    model: ETM,
    counts: sp.spmatrix,
    *,
    batch_size: int = 1000,
    bow_norm: bool = True,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Topic proportions of each document, shape (D, K), from the posterior mean.

    The model is put in eval mode for the call (deterministic: ``z = mu``)
    and restored afterwards. Documents with no words get the prior mean's
    softmax, i.e. whatever the encoder gives an all-zero input.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        csr = sp.csr_matrix(counts, dtype=np.float32)
        out = np.empty((csr.shape[0], model.num_topics), dtype=np.float32)
        for idx, batch in _batches(csr, batch_size, dev):
            theta, _ = model.get_theta(encoder_input(batch, bow_norm, dev))
            out[idx] = theta.float().cpu().numpy()
        return out
    finally:
        model.train(was_training)


@torch.no_grad()
def get_topic_word(model: ETM) -> np.ndarray:
    """``beta`` as a CPU array of shape (K, V)."""
    return model.get_beta().float().cpu().numpy()


@torch.no_grad()
def decoder_loglik(
    model: ETM, theta: np.ndarray, second_half: sp.csr_matrix, *, batch_size: int = 1000,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """``sum_w n_dw log p(w | theta_d)`` per document under the model's own decoder, in eval mode, (D,).

    For decoders that are not ``theta @ beta`` (the product of experts); one
    (batch, V) block is dense at a time.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        h2 = sp.csr_matrix(second_half, dtype=np.float64)
        out = np.empty(h2.shape[0])
        for lo in range(0, h2.shape[0], batch_size):
            hi = min(lo + batch_size, h2.shape[0])
            t = torch.as_tensor(np.asarray(theta[lo:hi]), dtype=next(model.parameters()).dtype, device=dev)
            log_probs = model.predictive_log_probs(t).double().cpu().numpy()
            out[lo:hi] = np.asarray(h2[lo:hi].multiply(log_probs).sum(axis=1)).ravel()
        return out
    finally:
        model.train(was_training)


def evaluate_completion(
    model: ETM,
    first_half: sp.spmatrix,
    second_half: sp.spmatrix,
    *,
    batch_size: int = 1000,
    bow_norm: bool = True,
    device: torch.device | str | None = None,
) -> CompletionScores:
    """Document-completion perplexity: theta from the first halves, likelihood of the second."""
    return evaluate_completion_chunks(model, [(first_half, second_half)], batch_size=batch_size, bow_norm=bow_norm,
                                      device=device)


def evaluate_completion_chunks(
    model: ETM,
    chunks: Sequence[tuple[sp.spmatrix, sp.spmatrix]],
    *,
    batch_size: int = 1000,
    bow_norm: bool = True,
    device: torch.device | str | None = None,
) -> CompletionScores:
    """:func:`evaluate_completion` over halves given in pieces (e.g. one per shard); memory holds one piece."""
    beta = get_topic_word(model) if model.decoder == "mixture" else None
    lls, lengths = [], []
    for first_half, second_half in chunks:
        if first_half.shape != second_half.shape:
            raise ValueError(f"halves differ in shape: {first_half.shape} vs {second_half.shape}")
        for start in range(0, first_half.shape[0], 50 * batch_size):  # bounds theta's memory per piece
            h1 = first_half[start : start + 50 * batch_size]
            h2 = sp.csr_matrix(second_half[start : start + 50 * batch_size], dtype=np.float64)
            theta = infer_theta(model, h1, batch_size=batch_size, bow_norm=bow_norm, device=device)
            if beta is not None:
                lls.append(completion_loglik(theta, beta, h2))
            else:
                lls.append(decoder_loglik(model, theta, h2, batch_size=batch_size, device=device))
            lengths.append(np.asarray(h2.sum(axis=1)).ravel())
    if not lls:
        raise ValueError("no documents to evaluate document completion on")
    ll, n = np.concatenate(lls), np.concatenate(lengths)
    return CompletionScores(
        perplexity_per_document=perplexity_per_document(ll, n),
        perplexity_per_token=perplexity_per_token(ll, n),
        n_documents=int(n.size),
        n_tokens=int(n.sum()),
    )
