"""The Embedded Topic Model as a plain ``torch.nn.Module``.

The module keeps the constructor arguments, attribute names and ``forward``
contract of the authors' ``ETM`` (Dieng, Ruiz & Blei, 2020) so that code written
against it keeps working, and adds a sparse path: batches may arrive as
:class:`SparseBatch` (CSR pieces of a ``scipy.sparse`` matrix), in which case the
first encoder layer is a sparse x dense product and the reconstruction term is
gathered on the non-zero entries only. Memory then grows with the number of
non-zeros, not with documents x vocabulary.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["ETM", "SparseBatch", "ACTIVATIONS", "SIMILARITIES", "DECODERS", "log_word_frequency"]

#: How topic-word logits come from the embeddings (``ETM(similarity=...)``): dot product, or cosine / temperature.
SIMILARITIES = ("dot", "cosine")
#: How a document's words are predicted from theta (``ETM(decoder=...)``): the paper's mixture
#: ``theta @ beta``, or a batch-normalised product of experts (ProdLDA's decoder on ETM's embeddings).
DECODERS = ("mixture", "product")
#: Activation names accepted by ``theta_act`` (the authors' set).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "rrelu": nn.RReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "glu": lambda: nn.GLU(dim=-1),
}


@dataclass(frozen=True)
class SparseBatch:
    """A batch of bags of words in CSR form, ready for :class:`ETM`.

    Besides the CSR arrays it carries the batch's column-major order, so that
    the first encoder layer's backward pass is a row gather too (see
    :class:`BagOfWordsLinear`).

    Attributes
    ----------
    indices : torch.LongTensor of shape (nnz,)
        Word index of each non-zero entry.
    values : torch.FloatTensor of shape (nnz,)
        Count (or normalised count) of each non-zero entry.
    offsets : torch.LongTensor of shape (B + 1,)
        CSR row pointers: document d's entries are ``offsets[d]:offsets[d+1]``.
    rows : torch.LongTensor of shape (nnz,)
        Document (row) of each non-zero entry.
    col_order : torch.LongTensor of shape (nnz,)
        Permutation of the entries that sorts them by word, then document.
    col_offsets : torch.LongTensor of shape (V,)
        Start of each word's entries in ``col_order``.
    present : torch.LongTensor of shape (U,)
        The distinct words of the batch, sorted (rows of a row-sparse gradient).
    n_docs : int
        B, the number of documents.
    n_words : int
        V, the vocabulary size.
    """

    indices: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor
    rows: torch.Tensor
    col_order: torch.Tensor
    col_offsets: torch.Tensor
    present: torch.Tensor
    n_docs: int
    n_words: int

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix, device: torch.device | str | None = None) -> SparseBatch:
        """Build a batch from a scipy sparse matrix of shape (B, V)."""
        csr = sp.csr_matrix(matrix)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        lengths = np.diff(csr.indptr)
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), lengths)
        col_order = np.argsort(csr.indices, kind="stable").astype(np.int64)
        col_counts = np.bincount(csr.indices, minlength=csr.shape[1])
        col_offsets = np.concatenate([[0], np.cumsum(col_counts)[:-1]]).astype(np.int64)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        return cls(
            indices=tensor(csr.indices.astype(np.int64)),
            values=tensor(csr.data.astype(np.float32)),
            offsets=tensor(csr.indptr.astype(np.int64)),
            rows=tensor(rows),
            col_order=tensor(col_order),
            col_offsets=tensor(col_offsets),
            present=tensor(np.flatnonzero(col_counts).astype(np.int64)),
            n_docs=csr.shape[0],
            n_words=csr.shape[1],
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_docs, self.n_words)

    def with_values(self, values: torch.Tensor) -> SparseBatch:
        """Same sparsity pattern, new values (e.g. normalised counts)."""
        return dataclasses.replace(self, values=values)

    def row_sums(self) -> torch.Tensor:
        """Total count per document, shape (B,)."""
        out = torch.zeros(self.n_docs, dtype=self.values.dtype, device=self.values.device)
        return out.index_add_(0, self.rows, self.values)

    def normalized(self) -> SparseBatch:
        """Each row divided by its sum (the authors' ``bow_norm``)."""
        sums = self.row_sums().clamp_min(1e-12)
        return self.with_values(self.values / sums[self.rows])

    def to_dense(self) -> torch.Tensor:
        """Dense (B, V) tensor: for small batches and tests only."""
        out = torch.zeros(self.n_docs, self.n_words, dtype=self.values.dtype, device=self.values.device)
        out.index_put_((self.rows, self.indices), self.values, accumulate=True)
        return out

    def pattern(self, dtype: torch.dtype) -> torch.Tensor:
        """The batch's sparsity pattern as a torch CSR tensor of ones, shape (B, V)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                self.offsets,
                self.indices,
                torch.ones_like(self.values, dtype=dtype),
                (self.n_docs, self.n_words),
                check_invariants=False,
            )


class _BagOfWordsProduct(torch.autograd.Function):
    """``bows @ weight_t`` for a sparse batch, both passes as weighted row gathers.

    Forward gathers the rows of ``weight_t`` (V, H) of each document's words;
    backward gathers, for each word, the output gradients of the documents it
    occurs in. ``embedding_bag``'s own backward instead materialises an
    (nnz, H) product and scatters it, several times slower on CPU.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, weight_t: torch.Tensor, batch: SparseBatch, sparse_grad: bool = False
    ) -> torch.Tensor:
        ctx.batch = batch
        ctx.sparse_grad = sparse_grad
        return F.embedding_bag(
            batch.indices, weight_t, batch.offsets[:-1], mode="sum", per_sample_weights=batch.values.to(weight_t.dtype)
        )

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        b: SparseBatch = ctx.batch
        # Bags of absent words are empty, so offsets of the present words alone give the same sums.
        offsets = b.col_offsets[b.present] if ctx.sparse_grad else b.col_offsets
        rows = F.embedding_bag(
            b.rows[b.col_order],
            grad_out.contiguous(),
            offsets,
            mode="sum",
            per_sample_weights=b.values[b.col_order].to(grad_out.dtype),
        )
        if not ctx.sparse_grad:
            return rows, None, None
        grad = torch.sparse_coo_tensor(b.present.unsqueeze(0), rows, (b.n_words, grad_out.shape[1]),
                                       check_invariants=False, is_coalesced=True)
        return grad, None, None


class _SampledProduct(torch.autograd.Function):
    """``(theta @ beta)[d, w]`` at the batch's non-zeros only, shape (nnz,).

    Forward is a sampled dense-dense product (SDDMM) on CPU and CUDA; backward
    gathers ``beta`` rows per document and ``theta`` rows per word, both
    O(nnz x K). (``torch.sparse.sampled_addmm``'s own backward builds a dense
    (B, V) gradient, which is what the sparse path exists to avoid.)
    """

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, beta_t: torch.Tensor, batch: SparseBatch) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = batch
        ctx.save_for_backward(theta, beta_t)
        if theta.device.type in ("cpu", "cuda"):
            return torch.sparse.sampled_addmm(batch.pattern(theta.dtype), theta, beta_t.t(), beta=0.0).values()
        return (theta.index_select(0, batch.rows) * beta_t.index_select(0, batch.indices)).sum(dim=1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        theta, beta_t = ctx.saved_tensors
        b: SparseBatch = ctx.batch
        grad_theta = F.embedding_bag(b.indices, beta_t.contiguous(), b.offsets[:-1], mode="sum",
                                     per_sample_weights=grad)
        grad_beta_t = F.embedding_bag(b.rows[b.col_order], theta.contiguous(), b.col_offsets, mode="sum",
                                      per_sample_weights=grad[b.col_order])
        return grad_theta, grad_beta_t, None


#: Rows per piece of the tall (V, K) @ (K, E) product in :class:`_TopicWordLogits`' backward.
_TALL_PRODUCT_ROWS = 1024


class _TopicWordLogits(torch.autograd.Function):
    """``rho @ alphas^T``, (V, K), with a backward suited to a tall, thin product on CPU.

    The gradient of ``rho`` is a (V, K) @ (K, E) product with K ~ 50. On CPU,
    BLAS runs it ~1.7x faster in pieces of ~1k rows than whole (measured at
    V = 20k-100k, 1 and 2 threads); at a 50k vocabulary that is ~15 ms of a
    ~250 ms step. The result is the same product, row block by row block.
    """

    @staticmethod
    def forward(ctx: Any, rho: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(rho, alphas)
        return torch.mm(rho, alphas.t())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # type: ignore[override]
        rho, alphas = ctx.saved_tensors
        grad = grad.contiguous()
        grad_rho = grad_alphas = None
        if ctx.needs_input_grad[0]:
            rows = grad.shape[0]
            if grad.device.type == "cpu" and rows > 4 * _TALL_PRODUCT_ROWS:
                grad_rho = grad.new_empty(rows, alphas.shape[1])
                for start in range(0, rows, _TALL_PRODUCT_ROWS):
                    stop = start + _TALL_PRODUCT_ROWS
                    torch.mm(grad[start:stop], alphas, out=grad_rho[start:stop])
            else:
                grad_rho = torch.mm(grad, alphas)
        if ctx.needs_input_grad[1]:
            grad_alphas = torch.mm(grad.t(), rho)
        return grad_rho, grad_alphas


def _column_max(x: torch.Tensor) -> torch.Tensor:
    """``x.amax(dim=0)`` by halving: elementwise maxima of contiguous halves.

    On CPU ``amax(dim=0)`` of a tall (V, K) tensor runs ~5x slower than this
    (and than ``sum(dim=0)``); the halves are contiguous blocks, so each pass
    is a vectorised elementwise maximum.
    """
    while x.shape[0] > 64:
        half = x.shape[0] // 2
        top = torch.maximum(x[:half], x[half : 2 * half])
        if x.shape[0] % 2:
            top[0] = torch.maximum(top[0], x[-1])
        x = top
    return x.amax(dim=0)


class _SoftmaxOverWords(torch.autograd.Function):
    """Softmax down dim 0 of a contiguous (V, K) tensor, i.e. over the words of each topic.

    Keeping ``beta`` as (V, K) lets the sampled product read one contiguous
    K-row per non-zero and saves two (V, K) <-> (K, V) copies a step;
    ``F.softmax(dim=0)`` is slow down columns, these few passes are not.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = (logits - _column_max(logits)).exp_()
        out.div_(out.sum(dim=0))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (probs,) = ctx.saved_tensors
        weighted = grad * probs
        return weighted.sub_(probs * weighted.sum(dim=0))


class BagOfWordsLinear(nn.Module):
    """First encoder layer, ``nn.Linear(V, H)`` that also takes sparse batches.

    The weight is stored as (V, H) so that a sparse batch is a single
    ``embedding_bag`` (a weighted row gather), whose backward pass scatters
    into only the rows of the words present. ``weight`` still reads as the
    (H, V) matrix of ``nn.Linear`` and state dicts use the ``nn.Linear`` key and
    layout, so checkpoints of the authors' module load unchanged.

    With ``sparse_grad=True`` a sparse batch gives ``weight_t`` a row-sparse
    gradient holding only the batch's words, for a lazy optimizer
    (``torch.optim.SparseAdam``) that updates just those rows.

    Shape
    -----
    Input: dense (B, V) tensor or :class:`SparseBatch`. Output: (B, H).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.sparse_grad = False
        self.weight_t = nn.Parameter(torch.empty(in_features, out_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))
        self._register_state_dict_hook(BagOfWordsLinear._save_hook)
        self._register_load_state_dict_pre_hook(BagOfWordsLinear._load_hook, with_module=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same initialisation as ``nn.Linear`` (uniform, bound 1/sqrt(V))."""
        bound = 1.0 / max(self.in_features, 1) ** 0.5
        nn.init.uniform_(self.weight_t, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @property
    def weight(self) -> torch.Tensor:
        """The (H, V) weight as ``nn.Linear`` exposes it (a view)."""
        return self.weight_t.t()

    @staticmethod
    def _save_hook(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        state_dict[prefix + "weight"] = state_dict.pop(prefix + "weight_t").t().contiguous()

    def _load_hook(self, state_dict: dict, prefix: str, *args: object) -> None:
        if prefix + "weight" in state_dict:
            state_dict[prefix + "weight_t"] = state_dict.pop(prefix + "weight").t()

    def forward(self, bows: torch.Tensor | SparseBatch) -> torch.Tensor:
        if isinstance(bows, SparseBatch):
            return _BagOfWordsProduct.apply(self.weight_t, bows, self.sparse_grad) + self.bias
        if bows.is_sparse or bows.layout != torch.strided:
            bows = bows.to_dense()
        return torch.addmm(self.bias, bows, self.weight_t)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class FixedEmbedding(nn.Module):
    """Pretrained word embeddings held fixed: ``weight`` is a buffer.

    A buffer moves with ``.to()`` and is saved in the state dict, so a model
    on fixed embeddings is self-contained, but it never receives gradients.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}, fixed"


class PartiallyFixedEmbedding(nn.Module):
    """Pretrained embeddings held fixed except a few rows that are learned.

    For the labelled ETM when some vocabulary words have no pretrained
    vector: their rows (``rows``) start random and are trained, the others
    stay fixed. ``weight`` assembles the (V, E) matrix on each access.
    """

    def __init__(self, weight: torch.Tensor, rows: torch.Tensor) -> None:
        super().__init__()
        rows = torch.as_tensor(rows, dtype=torch.long).to(weight.device)
        if rows.ndim != 1 or rows.numel() == 0:
            raise ValueError("rows must be a non-empty 1-D index of trainable embedding rows")
        if int(rows.min()) < 0 or int(rows.max()) >= weight.shape[0]:
            raise ValueError(
                f"trainable rows must lie in [0, {weight.shape[0]}), got {int(rows.min())}..{int(rows.max())}"
            )
        if rows.unique().numel() != rows.numel():
            raise ValueError("trainable rows contain duplicates")
        self.register_buffer("fixed", weight)
        self.register_buffer("rows", rows)
        self.free = nn.Parameter(weight.index_select(0, rows).clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.fixed.index_copy(0, self.rows, self.free)

    def extra_repr(self) -> str:
        return f"{self.fixed.shape[0]}, {self.fixed.shape[1]}, fixed except {self.rows.numel()} rows"


class ETM(nn.Module):
    """Embedded Topic Model (Dieng, Ruiz & Blei, TACL 2020).

    Parameters
    ----------
    num_topics : int
        K, the number of topics.
    vocab_size : int
        V, the vocabulary size.
    t_hidden_size : int, default 800
        H, the width of both hidden layers of the encoder ``q_theta``
        (the inference network of theta).
    rho_size : int, default 300
        E, the embedding size shared by words (``rho``) and topics
        (``alphas``).
    emsize : int or None, default None
        The authors' second name for the embedding size; accepted as an alias
        of ``rho_size`` and must equal it when given.
    theta_act : str, default "relu"
        Encoder activation, one of :data:`ACTIVATIONS`. With ``"glu"`` each
        hidden linear layer outputs 2H so that GLU halves it back to H.
    embeddings : torch.Tensor of shape (V, E), optional
        Pretrained word embeddings (``rho`` in the paper).
    train_embeddings : bool, default True
        Learn ``rho``. When False, ``embeddings`` is required and kept fixed.
    trainable_rows : sequence of int, optional
        With ``train_embeddings=False``: rows of ``embeddings`` that are
        learned all the same (words without a pretrained vector).
    enc_drop : float, default 0.5
        Dropout on the encoder output (``t_drop``). 0.5 is the default of the
        authors' ``ETM`` class, kept so that code written against their module
        behaves the same; :class:`etm.TopicModel` (``dropout``) and ``etm
        train`` (``--enc-drop``) default to 0.0, their ``main.py``'s value
        (see :mod:`etm.options`): the one deliberate difference between this
        class's defaults and theirs.
    background : torch.Tensor of shape (V,), optional
        Fixed per-word bias added to every topic's logits, normally the log
        of each word's corpus frequency (:func:`log_word_frequency`), as in
        SAGE (Eisenstein et al., 2011) and Scholar (Card et al., 2018):
        ``beta_k = softmax(rho @ alpha_k + background)``. Topics then only
        model how they *deviate* from overall word frequency instead of
        each spending mass on frequent words. Not in the authors' model.
        Only for ``decoder="mixture"``: the product decoder learns each
        word's shift itself.
    similarity : {"dot", "cosine"}, default "dot"
        Topic-word logits ``rho @ alphas^T`` (the paper's) or the cosine of
        the two embeddings divided by ``temperature``.
    temperature : float, default 0.1
        With ``similarity="cosine"``: the logits span ``[-1/t, 1/t]``.
    decoder : {"mixture", "product"}, default "mixture"
        ``"mixture"`` is the paper's likelihood ``p(w | theta) = theta @
        beta``. ``"product"`` is a product of experts, as in ProdLDA
        (Srivastava & Sutton, 2017) and ECRTM (Wu et al., 2023):
        ``p(w | theta) = softmax_w(BN_w(theta @ S))``, where ``S = softmax
        over topics of the same logits`` (each word's shares of the topics)
        and ``BN`` a batch normalisation per word with a fixed scale of 1 and
        a learned shift (a word's background frequency). A topic then only has
        to *raise* its words relative to the other topics, instead of carrying
        the mass of the corpus's frequent words; its topics are markedly more
        coherent and distinct (see ``docs/benchmarks/recipe.md``). As in
        ProdLDA, the encoder's mean ``mu`` is batch-normalised too (scale 1,
        learned shift, attribute ``mu_bn``), which keeps every topic in use.
        :meth:`get_beta` then returns ``p(w | theta = e_k)``, the word
        distribution of a document made of topic k alone. The decoder's
        normaliser is over the whole vocabulary, so a training step holds a
        dense (batch, V) block (the corpus itself still travels sparse).
    device, dtype : optional
        Where and in which precision to create the parameters.

    Attributes
    ----------
    q_theta : nn.Sequential
        Encoder MLP, (B, V) -> (B, H).
    mu_q_theta, logsigma_q_theta : nn.Linear
        (B, H) -> (B, K): mean and log-variance of the logistic-normal
        posterior of theta.
    rho : nn.Linear or FixedEmbedding
        Word embeddings; ``rho.weight`` has shape (V, E).
    alphas : nn.Linear
        Topic embeddings; ``alphas.weight`` has shape (K, E).

    Shape
    -----
    bows, normalized_bows: (B, V) dense tensors or :class:`SparseBatch`.
    ``get_theta``: (B, K). ``get_beta``: (K, V). ``forward``: ``(recon_loss,
    kld_theta)``, scalars if ``aggregate`` else recon_loss of shape (B,).

    Examples
    --------
    >>> import torch
    >>> m = ETM(num_topics=3, vocab_size=20, t_hidden_size=8, rho_size=4)
    >>> bows = torch.randint(0, 3, (5, 20)).float() + 1
    >>> recon, kld = m(bows, bows / bows.sum(1, keepdim=True))
    >>> tuple(m.get_beta().shape)
    (3, 20)
    """

    def __init__(
        self,
        num_topics: int,
        vocab_size: int,
        t_hidden_size: int = 800,
        rho_size: int = 300,
        emsize: int | None = None,
        theta_act: str = "relu",
        embeddings: torch.Tensor | np.ndarray | None = None,
        train_embeddings: bool = True,
        enc_drop: float = 0.5,
        *,
        trainable_rows: Sequence[int] | torch.Tensor | np.ndarray | None = None,
        background: torch.Tensor | np.ndarray | None = None,
        similarity: str = "dot",
        temperature: float = 0.1,
        decoder: str = "mixture",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_topics", num_topics), ("vocab_size", vocab_size), ("t_hidden_size", t_hidden_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if embeddings is not None:
            embeddings = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings)
            if embeddings.ndim != 2 or embeddings.shape[0] != vocab_size:
                raise ValueError(
                    f"embeddings must have shape (vocab_size={vocab_size}, E), got {tuple(embeddings.shape)}"
                )
            rho_size = int(embeddings.shape[1]) if emsize is None else rho_size
        if emsize is not None and int(emsize) != int(rho_size):
            raise ValueError(
                f"rho_size={rho_size} and emsize={emsize} differ; this ETM has one embedding size "
                "(words and topics share it), so pass only rho_size"
            )
        if embeddings is not None and embeddings.shape[1] != rho_size:
            raise ValueError(f"embeddings have {embeddings.shape[1]} dimensions but rho_size={rho_size}")
        if not train_embeddings and embeddings is None:
            raise ValueError("train_embeddings=False needs pretrained `embeddings` of shape (V, E)")
        if trainable_rows is not None and train_embeddings:
            raise ValueError("trainable_rows only applies to fixed embeddings (train_embeddings=False)")
        if trainable_rows is not None and len(trainable_rows) == 0:
            trainable_rows = None
        if theta_act not in ACTIVATIONS:
            raise ValueError(f"unknown theta_act {theta_act!r}; choose one of {sorted(ACTIVATIONS)}")
        if not 0.0 <= float(enc_drop) < 1.0:
            raise ValueError(f"enc_drop must be in [0, 1), got {enc_drop!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; choose one of {list(SIMILARITIES)}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {list(DECODERS)}")
        if decoder == "product" and background is not None:
            raise ValueError("background is a term of the mixture decoder; decoder='product' learns each word's "
                             "shift itself (its batch normalisation's bias): pass background=None")

        factory = {"device": device, "dtype": dtype}
        self.num_topics = int(num_topics)
        self.vocab_size = int(vocab_size)
        self.t_hidden_size = int(t_hidden_size)
        self.rho_size = int(rho_size)
        self.emsize = int(rho_size)
        self.theta_act_name = theta_act
        self.enc_drop = float(enc_drop)
        self.similarity = similarity
        self.temperature = float(temperature)
        self.decoder = decoder
        self.train_embeddings = bool(train_embeddings)
        self.t_drop = nn.Dropout(self.enc_drop)
        self.theta_act = ACTIVATIONS[theta_act]()

        width = 2 * self.t_hidden_size if theta_act == "glu" else self.t_hidden_size
        self.q_theta = nn.Sequential(
            BagOfWordsLinear(self.vocab_size, width, **factory),
            self.theta_act,
            nn.Linear(self.t_hidden_size, width, **factory),
            self.theta_act,
        )
        self.mu_q_theta = nn.Linear(self.t_hidden_size, self.num_topics, bias=True, **factory)
        self.logsigma_q_theta = nn.Linear(self.t_hidden_size, self.num_topics, bias=True, **factory)

        if self.train_embeddings:
            self.rho: nn.Module = nn.Linear(self.rho_size, self.vocab_size, bias=False, **factory)
            if embeddings is not None:
                with torch.no_grad():
                    self.rho.weight.copy_(embeddings)
        else:
            assert embeddings is not None  # checked above
            fixed = embeddings.detach().clone().to(device=device, dtype=dtype or torch.float32)
            if trainable_rows is None:
                self.rho = FixedEmbedding(fixed)
            else:
                self.rho = PartiallyFixedEmbedding(fixed, torch.as_tensor(np.asarray(trainable_rows)))
        self.alphas = nn.Linear(self.rho_size, self.num_topics, bias=False, **factory)
        self.background: torch.Tensor | None
        if background is None:
            self.register_buffer("background", None)
        else:
            bg = torch.as_tensor(np.asarray(background) if not torch.is_tensor(background) else background)
            if bg.shape != (self.vocab_size,):
                raise ValueError(f"background must have shape (vocab_size={self.vocab_size},), got {tuple(bg.shape)}")
            if not torch.isfinite(bg).all():
                raise ValueError("background contains NaN or infinity; smooth zero frequencies before taking logs")
            self.register_buffer("background", bg.detach().clone().to(device=device, dtype=dtype or torch.float32))
        if decoder == "product":
            # ProdLDA's normalisations, scale fixed at 1 and a learned shift: of the decoder's input per word, and
            # of the encoder's mean per topic (which keeps every topic in use: without it, at K = 100 on 20NG,
            # half the topics were duplicates, diversity 0.39 against 0.54)
            self.decoder_bn = nn.BatchNorm1d(self.vocab_size, **factory)
            self.decoder_bn.weight.requires_grad_(False)
            self.mu_bn = nn.BatchNorm1d(self.num_topics, **factory)
            self.mu_bn.weight.requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls,
        embeddings: torch.Tensor | np.ndarray,
        num_topics: int,
        *,
        freeze: bool = True,
        **kwargs: object,
    ) -> ETM:
        """Build an ETM on pretrained word embeddings of shape (V, E).

        ``freeze=True`` is the paper's labelled ETM (fixed ``rho``);
        ``freeze=False`` starts from them and fine-tunes.
        """
        emb = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings)
        return cls(
            num_topics,
            int(emb.shape[0]),
            rho_size=int(emb.shape[1]),
            embeddings=emb,
            train_embeddings=not freeze,
            **kwargs,  # type: ignore[arg-type]
        )

    def extra_repr(self) -> str:
        return (
            f"num_topics={self.num_topics}, vocab_size={self.vocab_size}, "
            f"t_hidden_size={self.t_hidden_size}, rho_size={self.rho_size}, "
            f"theta_act={self.theta_act_name!r}, train_embeddings={self.train_embeddings}, "
            f"enc_drop={self.enc_drop}, background={self.background is not None}"
            + (f", similarity='cosine', temperature={self.temperature:g}" if self.similarity == "cosine" else "")
            + (f", decoder={self.decoder!r}" if self.decoder != "mixture" else "")
        )

    # -- the authors' API -------------------------------------------------
    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``z = mu + eps * sigma`` in training; the mean ``mu`` in eval mode."""
        if self.training:
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(std)
            return eps.mul_(std).add_(mu)
        return mu

    def encode(self, bows: torch.Tensor | SparseBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior parameters of theta and its KL to N(0, I).

        Returns ``mu_theta`` (B, K), ``logsigma_theta`` (B, K) and the KL
        averaged over the batch (a scalar).
        """
        q_theta = self.q_theta(bows)
        if self.enc_drop > 0:
            q_theta = self.t_drop(q_theta)
        mu_theta = self.mu_q_theta(q_theta)
        if self.decoder == "product":
            mu_theta = self.mu_bn(mu_theta)
        logsigma_theta = self.logsigma_q_theta(q_theta)
        kl_theta = -0.5 * torch.sum(1 + logsigma_theta - mu_theta.pow(2) - logsigma_theta.exp(), dim=-1).mean()
        return mu_theta, logsigma_theta, kl_theta

    def get_beta(self) -> torch.Tensor:
        """Topic-word distributions ``softmax(rho @ alphas^T)^T``, shape (K, V).

        With ``decoder="product"``: ``p(w | theta = e_k)``, each topic's word
        distribution under the decoder (with its running statistics).
        """
        if self.decoder == "product":
            return self._topic_distributions(self._topic_shares())
        return self._word_topic_probs().t().contiguous()

    def _topic_distributions(self, shares: torch.Tensor) -> torch.Tensor:
        """The product decoder's ``p(w | theta = e_k)`` from the (V, K) topic shares, (K, V), running statistics."""
        bn = self.decoder_bn
        pure = F.batch_norm(shares.t(), bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False,
                            eps=bn.eps)
        return F.softmax(pure, dim=1)

    def _logits(self) -> torch.Tensor:
        """Topic-word logits, (V, K): ``rho @ alphas^T``, or cosines / temperature."""
        rho, alphas = self.rho.weight, self.alphas.weight
        if self.similarity == "cosine":  # the 1/t scale goes on the K rows, not the V x K logits
            rho, alphas = F.normalize(rho, dim=1), F.normalize(alphas, dim=1) / self.temperature
        return _TopicWordLogits.apply(rho, alphas)

    def _topic_shares(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Each word's shares of the topics, softmax of the logits over topics, (V, K): the product decoder's."""
        return F.softmax(self._logits() if logits is None else logits, dim=1)

    def predictive_log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``log p(w | theta)`` of every word, (B, V), under this model's decoder.

        Dense over the vocabulary: for evaluation in batches. With the
        product decoder in training mode this normalises with the batch's
        statistics and updates the running ones (use eval mode to score).
        """
        if self.decoder == "product":
            return self._product_log_probs(theta, self._topic_shares())
        return self.decode(theta, self.get_beta())

    def _product_log_probs(self, theta: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
        """The product decoder, ``log softmax_w(BN_w(theta @ S^T))``, (B, V), from the (V, K) topic shares ``S``."""
        return F.log_softmax(self.decoder_bn(torch.mm(theta, shares.t())), dim=-1)

    def _word_topic_probs(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        """``get_beta()`` transposed, (V, K), without a copy: the layout training works in.

        Column k is topic k's distribution over the words. The sparse
        likelihood reads one contiguous row of K per non-zero from it, and
        the logits ``rho @ alphas^T`` come out of BLAS in this layout
        (``logits``: this step's :meth:`_logits`, when the caller has them).
        """
        logits = self._logits() if logits is None else logits  # (V, K)
        if self.background is not None:
            logits = logits + self.background.unsqueeze(1)
        return _SoftmaxOverWords.apply(logits)

    def _beta_for_loss(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        """The (K, V) beta the loss uses: ``_word_topic_probs().t()``, a view, not a copy.

        A subclass that overrides :meth:`get_beta` (a different decoder) is
        honoured: its ``get_beta()`` is used instead.
        """
        if not self._loss_reads_logits():
            return self.get_beta()
        return self._word_topic_probs(logits).t()

    def _loss_reads_logits(self) -> bool:
        """Whether the loss is computed from :meth:`_logits`: not for a mixture subclass with its own ``get_beta``."""
        return self.decoder == "product" or type(self).get_beta is ETM.get_beta

    def _loss_terms(self, bows: torch.Tensor | SparseBatch, theta: torch.Tensor, topics: bool = True,
                    logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-document reconstruction loss (B,) and the (K, V) matrix the regularizers see.

        Mixture: ``beta``. Product: :meth:`get_beta`, each topic's word
        distribution under the decoder (with its running statistics, so it
        does not depend on the batch), so that a seed prior on
        ``log beta[k, w]`` makes seed word w lead topic k; with
        ``topics=False`` (no regularizer reads it) the product decoder skips
        it and returns None. ``logits``: this step's :meth:`_logits`, when the
        caller computed them (a training step shares them with the
        embedding-clustering regulariser instead of computing them twice).
        """
        if self.decoder == "mixture":
            beta = self._beta_for_loss(logits)
            return self.reconstruction_loss(bows, theta, beta), beta
        shares = self._topic_shares(logits)  # (V, K)
        log_probs = self._product_log_probs(theta, shares)
        if isinstance(bows, SparseBatch):
            token_ll = log_probs[bows.rows, bows.indices] * bows.values.to(log_probs.dtype)
            out = torch.zeros(bows.n_docs, dtype=token_ll.dtype, device=token_ll.device)
            recon = -out.index_add(0, bows.rows, token_ll)
        else:
            recon = -(log_probs * (bows.to_dense() if bows.layout != torch.strided else bows)).sum(1)
        return recon, self._topic_distributions(shares) if topics else None

    def get_theta(self, normalized_bows: torch.Tensor | SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Topic proportions (B, K) and the batch KL, as in the authors' code."""
        mu_theta, logsigma_theta, kld_theta = self.encode(normalized_bows)
        z = self.reparameterize(mu_theta, logsigma_theta)
        theta = F.softmax(z, dim=-1)
        return theta, kld_theta

    def decode(self, theta: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Dense log-likelihood of every word, ``log(theta @ beta + 1e-6)``, (B, V)."""
        res = torch.mm(theta, beta)
        return torch.log(res + 1e-6)

    def forward(
        self,
        bows: torch.Tensor | SparseBatch,
        normalized_bows: torch.Tensor | SparseBatch | None,
        theta: torch.Tensor | None = None,
        aggregate: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Negative reconstruction log-likelihood and KL of a batch.

        With dense ``bows`` this is the authors' formula; with a
        :class:`SparseBatch` the likelihood is evaluated only on the non-zero
        counts, which gives the same value because zero counts contribute
        nothing. ``kld_theta`` is None when ``theta`` is given.
        """
        if theta is None:
            if normalized_bows is None:
                raise ValueError("normalized_bows is required when theta is not given")
            theta, kld_theta = self.get_theta(normalized_bows)
        else:
            kld_theta = None
        recon_loss, _ = self._loss_terms(bows, theta, topics=False)
        if aggregate:
            recon_loss = recon_loss.mean()
        return recon_loss, kld_theta

    @staticmethod
    def reconstruction_loss(
        bows: torch.Tensor | SparseBatch, theta: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        """Per-document ``-sum_w bows[d, w] * log((theta @ beta)[d, w] + 1e-6)``, shape (B,)."""
        if isinstance(bows, SparseBatch):
            probs = _SampledProduct.apply(theta, beta.t(), bows)
            token_ll = torch.log(probs + 1e-6) * bows.values
            out = torch.zeros(bows.n_docs, dtype=token_ll.dtype, device=token_ll.device)
            return -out.index_add(0, bows.rows, token_ll)
        if bows.layout != torch.strided:
            bows = bows.to_dense()
        preds = torch.log(torch.mm(theta, beta) + 1e-6)
        return -(preds * bows).sum(1)


def log_word_frequency(counts: sp.spmatrix | np.ndarray, smoothing: float = 1.0) -> torch.Tensor:
    """Log relative frequency of each word in a corpus, shape (V,), for ``ETM(background=...)``.

    ``counts`` is a (D, V) count matrix or the (V,) word totals already
    summed. ``smoothing`` is added to every count so that a word absent from
    the corpus gets a finite (very low) bias instead of minus infinity.
    """
    if isinstance(counts, np.ndarray) and counts.ndim == 1:
        totals = counts.astype(np.float64) + float(smoothing)
    else:
        totals = np.asarray(sp.csr_matrix(counts).sum(axis=0), dtype=np.float64).ravel() + float(smoothing)
    return torch.from_numpy(np.log(totals / totals.sum()).astype(np.float32))
