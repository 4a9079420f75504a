"""``TopicModel``: a scikit-learn-style estimator around :class:`etm.ETM`.

For analysts: ``TopicModel(n_topics=50).fit(texts)`` preprocesses, trains with
validation-based checkpoint selection and exposes the results as fitted
attributes and NumPy arrays. ``get_params`` / ``set_params`` / ``clone`` work as
in scikit-learn; ``__init__`` only stores its arguments.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from etm.corpus import Corpus, CorpusSource, check_same_vocabulary, split_halves
from etm.device import resolve_device
from etm.diagnostics import auto_batch_size, auto_epochs, detect_collapse
from etm.metrics import (
    CompletionScores,
    top_word_indices,
    top_words,
    topic_coherence,
    topic_diversity,
    topic_quality,
)
from etm.model import ETM, log_word_frequency
from etm.options import (
    DECODER_DEFAULTS,
    DEFAULTS,
    OPTIONS,
    PPMI_DOCUMENT_TOKENS,
    SHORT_DOCUMENT_TOKENS,
    check_value,
    validate_options,
)
from etm.persistence import load_model, save_model
from etm.preprocessing import Preprocessor
from etm.regularizers import EmbeddingClustering, combine, word_mass
from etm.training import TrainingConfig, evaluate_completion_chunks, get_topic_word, infer_theta, train
from etm.training.checkpoint import run_checkpoints
from etm.validation import validation_quality, validation_reference

logger = logging.getLogger(__name__)

__all__ = ["TopicModel"]

def _check_documents_input(X: Any, method: str) -> None:
    if isinstance(X, str):
        raise TypeError(
            f"TopicModel.{method} expects a list of documents, got a single string; wrap it: [text]"
        )
    if isinstance(X, Iterator):
        raise TypeError(
            f"TopicModel.{method} got a one-shot iterator ({type(X).__name__}); pass a list or another "
            "re-iterable collection, since the documents are read more than once"
        )


class TopicModel(TransformerMixin, BaseEstimator):
    """Embedded Topic Model with a scikit-learn interface.

    The options' defaults, bounds and choices are declared once in
    :mod:`etm.options` (shared with ``TrainingConfig`` and ``etm train``) and
    checked when ``fit`` starts.

    Parameters
    ----------
    n_topics : int, default 50
        K, the number of topics.
    hidden_size : int or None, default None
        H, width of the encoder (``t_hidden_size`` in the authors' code, who
        used 800; ProdLDA and ECRTM use 200). None is 200 with the product
        decoder: on 20 Newsgroups the same topic quality as 800 (K = 25 to
        100, three seeds), 1-2% higher perplexity, in about half the training
        time, and better seeded labels (docs/benchmarks/recipe.md); the
        encoder's H x H layer was most of a step. With the mixture decoder
        None is 800, at which its recipe was chosen (at 200 a seeded mixture
        model stopped early and labelled worse).
    embedding_size : int or None, default None
        E, size of word and topic embeddings (``rho_size`` / ``emb_size``);
        None means 300, or the size of ``embeddings`` when given.
    embeddings : path, KeyedVectors, AlignedEmbeddings, mapping or ndarray, optional
        Pretrained word vectors: the *labelled* ETM. A path is read with
        :func:`etm.embeddings.read_embeddings` (word2vec text/binary, GloVe,
        fastText ``.vec``); a (V, E) array must follow the training
        vocabulary. Only the vocabulary's rows are kept and stored with the
        model. None learns the embeddings (the unlabelled ETM), or takes them
        from the corpus (``corpus_embeddings``).
    corpus_embeddings : bool or None, default None
        Without ``embeddings``: first learn word vectors of the training
        documents (``corpus_embedding_method``) and keep ``rho`` fixed at
        them, the labelled ETM with no outside vectors. None turns it on when
        the mean training document has fewer than
        ``etm.options.SHORT_DOCUMENT_TOKENS`` (50) tokens: on short texts
        (titles, posts) the embeddings learned with the topics lead them to
        rare words.
    corpus_embedding_method : {"ppmi", "skipgram"} or None, default None
        How those corpus vectors are made: the SVD of the training
        documents' positive PMI matrix (:func:`etm.embeddings.corpus_ppmi`),
        about a second, or skip-gram (:func:`etm.embeddings.corpus_skipgram`,
        gensim), some ten seconds. None is "ppmi" when the mean training
        document has fewer than ``etm.options.PPMI_DOCUMENT_TOKENS`` (30)
        tokens, "skipgram" otherwise: on subject lines, CiteSeer-M10's
        titles and 20 Newsgroups cut to 10 and 25 tokens the PPMI vectors
        give about the same topic quality or better (on M10 at K = 100 2.5x),
        in a half to two thirds of the fit time; on messages cut to 42 tokens
        skip-gram's are 8% better (docs/benchmarks/recipe.md, "Twelfth session").
    fine_tune_embeddings : bool, default False
        Start from ``embeddings`` (or the corpus's) and train them (otherwise
        they stay fixed).
    missing_embeddings : {"train", "fixed"}, default "train"
        Vocabulary words without a pretrained vector get a seeded random
        vector that is learned ("train") or kept as it is ("fixed").
    activation : str, default "relu"
        Encoder activation (``theta_act``), one of ``etm.model.ACTIVATIONS``.
    dropout : float, default 0.0
        Encoder dropout (``enc_drop``), the authors' ``main.py`` default;
        :class:`etm.ETM` itself keeps their class's 0.5 (see :mod:`etm.options`).
    background : bool, default True
        With ``decoder="mixture"``: add each word's log training-corpus
        frequency to every topic's logits (see :class:`etm.ETM`); topics then
        model deviations from the background instead of each learning the
        most frequent words (docs/benchmarks/small-corpus.md). The product
        decoder learns each word's shift itself, so it has no background
        term. False is the authors' model.
    similarity : {"dot", "cosine"}, default "cosine"
        How topic-word logits are made from the embeddings (see
        :class:`etm.ETM`): the paper's dot product, or their cosine divided by
        ``temperature``.
    temperature : float or None, default None
        The temperature of ``similarity="cosine"``; None is 0.5 with the
        product decoder and 0.1 with the mixture (the best of each on 20
        Newsgroups, docs/benchmarks/recipe.md).
    decoder : {"mixture", "product"}, default "product"
        How documents' words are predicted from their topics (see
        :class:`etm.ETM`): the paper's mixture ``theta @ beta``, or a
        batch-normalised product of experts over each word's topic shares
        (ProdLDA's decoder on ETM's embeddings). The product decoder with
        cosine similarity (t = 0.5), ``kl_weight=0.05`` and
        ``encoder_token_drop=0.5`` is the default recipe: on 20 Newsgroups it
        gives better topics than LDA and ECRTM (K = 25 to 100) at a lower
        perplexity than both (docs/benchmarks/recipe.md), and seeded
        models label documents better with it than with the mixture
        (docs/benchmarks/seeded.md). ``decoder="mixture",
        similarity="dot", kl_weight=1.0, encoder_token_drop=0.0`` is the
        authors' model.
    ecr_weight : float or None, default None
        Weight of the embedding-clustering regulariser of ECRTM (Wu et al.,
        ICML 2023; :class:`etm.regularizers.EmbeddingClustering`): the
        optimal-transport cost between topic embeddings (``alpha``) and word
        embeddings (``rho``), which pulls each topic towards its own cluster
        of words (on the unit sphere with cosine similarity). None is, with
        the product decoder, the mean training-document length in tokens / 8
        (10.3 on the authors' 20 Newsgroups, 0.74 on six-word titles: the
        reconstruction term grows with a document's length, this term does
        not): topics then share fewer words (docs/benchmarks/recipe.md). 0
        (off) with the mixture and for seeded models.
    ecr_alpha : float, default 20.0
        Inverse temperature of its Sinkhorn plan (ECRTM's ``sinkhorn_alpha``).
    ecr_word_mass : {"sqrt-frequency", "uniform"}, default "sqrt-frequency"
        Each word's share of the mass the plan moves: proportional to the
        square root of its training count (:func:`etm.regularizers.word_mass`),
        or equal (ECRTM's, under which each topic must take 1/K of the
        vocabulary, rare words included: it mixed themes at 20 topics).
    epochs : int or None, default None
        Maximum epochs. None runs about 2,000 optimisation steps, between 20
        and 100 epochs (:func:`etm.diagnostics.auto_epochs`; 100 on 20
        Newsgroups); ``patience`` usually stops it sooner. The value used is
        ``epochs_``. The authors ran 20.
    lr, optimizer, weight_decay, clip, bow_norm, anneal_lr, nonmono, lr_factor
        Training settings; defaults are the authors' (see
        :class:`etm.training.TrainingConfig`).
    batch_size : int or None, default None
        Documents per step. None picks about 20 steps per epoch, between 32
        and the authors' 1000 documents (:func:`etm.diagnostics.auto_batch_size`):
        the authors' 1000 on corpora of 20,000 training documents or more,
        fewer on small corpora, which collapse to identical topics when an
        epoch is only a step or two. The value used is ``batch_size_``.
    patience : int or None, default 10
        Early stopping after this many epochs without a better validation
        perplexity (None: run every epoch, the authors' way).
    kl_weight : float or None, default None
        Multiplier of the KL term. Below 1 each document concentrates on
        fewer topics (the authors' 1.0 spreads a 20 Newsgroups message over
        ~30 of 50 topics), so topics stop sharing the frequent words. None is
        0.05 with the product decoder and 0.1 with the mixture.
    kl_warmup, lr_schedule, ema_decay
        KL warm-up epochs, "constant" or "cosine" learning rate, and weight
        averaging (see :class:`etm.training.TrainingConfig`).
    lazy_updates : bool, default False
        Row-sparse gradients and a lazy Adam for the first encoder layer:
        only the rows of a batch's words move. It pays when batches hold a
        small share of the vocabulary; a slightly different optimisation
        (see :class:`etm.training.TrainingConfig` and docs/benchmarks/speed.md).
    encoder_token_drop : float, default 0.5
        Share of each training document's tokens hidden from the encoder at
        every step, so that it learns to infer topic proportions from part
        of a document, as document completion and short documents ask of
        it; the decoder still reconstructs every token. 0 is the authors'
        training (see :class:`etm.training.TrainingConfig`).
    valid_size : float, default 0.1
        Share of training documents held out for validation when ``fit`` is
        given texts or a single corpus (0 disables validation).
    seed_topics : mapping of name -> list of words, path, or None
        Seeded topics (a JSON/YAML file is read with
        :func:`etm.seeding.read_seed_file`). They become the first topics and
        keep their names in ``topic_names_``, listings, theta columns and
        plots; the other topics are free. See :mod:`etm.seeding`.
    n_free_topics : int or None
        With seeds: free topics beside the seeded ones (K = seeds + this);
        None keeps ``n_topics`` as K.
    seed_strength : float, default 1.0
        Share of each seed word's training count added as pseudo-counts to its
        topic (the Dirichlet-style prior); 0 leaves only the initialisation.
    seed_schedule : {"constant", "decay"}, default "constant"
        Keep the prior's strength, or decay it linearly to zero.
    seed_init : bool, default True
        Start each seeded topic's embedding at its seed words' mean embedding.
    seed_doc_prior : float, default 6.0
        In training, centre the prior of a document's seeded-topic weights at
        ``seed_doc_prior * log(1 + count of that topic's seed words)``
        (keyATM-style; see :class:`etm.seeding.SeedPrior`).
    seed_doc_centered : bool, default True
        Take that log count relative to its mean over the training
        documents: the prior then decides which documents a seeded topic
        takes, without drawing every document that mentions a seed word in
        passing away from the free topics.
    preprocessor : Preprocessor or None
        Tokenisation and vocabulary for text input; None uses
        ``Preprocessor()``. Ignored for bag-of-words input.
    device : str, default "auto"
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int or None, default 2019
        Seed of splitting, initialisation and training.
    n_init : int, default 1
        Train this many networks from different seeds (the first from
        ``random_state``) and keep the one whose topics score best on the
        validation documents (:func:`etm.validation.validation_quality`, the
        estimate ``etm tune`` optimises; the test split is never read). At
        K = 10-20 on 20 Newsgroups a seed moves topic quality by 20-40%;
        n times the training time. Needs a validation split. With ``checkpoint_dir``,
        run i checkpoints into ``checkpoint_dir/init-i``.
    checkpoint_dir : path or None
        Where to keep resumable checkpoints and the best model.
    checkpoint_every : int, default 5
        Epochs between checkpoints (one is also written at the end, on early
        stopping and on Ctrl-C).
    verbose : bool, default False
        Progress bar during training.

    Attributes
    ----------
    model_ : ETM
        The trained torch module (on CPU, eval mode).
    vocabulary_ : list of str of length V
    topic_word_ : ndarray of shape (K, V)
        ``beta`` in Dieng et al. (with the product decoder: each topic's word
        distribution under the decoder, see :meth:`etm.ETM.get_beta`).
    decoder_, temperature_, kl_weight_, hidden_size_, ecr_weight_, corpus_embeddings_, corpus_embedding_method_
        The decoder, temperature, KL weight, encoder width,
        embedding-clustering weight, corpus-embeddings choice and their
        method (None without corpus vectors) used (resolved when None). Saved with
        the model and restored by :meth:`load` (for a model saved before
        they were recorded: what its network tells, else None).
    topic_embeddings_ : ndarray of shape (K, E)
        ``alpha`` in Dieng et al.
    word_embeddings_ : ndarray of shape (V, E)
        ``rho`` in Dieng et al.
    preprocessor_ : Preprocessor or None
        Fitted preprocessor when trained on texts.
    history_ : list of dict
        One record per epoch.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
    valid_perplexity_ : float or None
        Best validation document-completion perplexity (per document).
    random_state_ : int
        The seed actually used (of the split when fit is given texts, of the
        embeddings, and of the first run).
    init_seed_ : int
        The seed of the network kept: its initialisation and training noise
        (``random_state_`` unless ``n_init > 1`` kept another run).
    restarts_ : list of dict or None
        With ``n_init > 1``, each run in order: ``seed``, validation
        ``quality``, ``coherence``, ``diversity``, ``valid_perplexity``,
        ``best_epoch``, ``epochs`` and ``seconds`` (of this fit: a run a
        resumed fit found complete took none); None with ``n_init=1``.
    training_seconds_ : float
        Seconds spent training (all runs with ``n_init > 1``).
    epochs_ : int
        The maximum number of epochs used (``epochs``, or the one chosen for the corpus).
    batch_size_ : int
        The batch size used (``batch_size``, or the one chosen for the corpus).
    collapse_ : dict or None
        When training ended in topic collapse (many topics repeating the same
        top words), what :func:`etm.diagnostics.detect_collapse` found, with
        the likely cause and a remedy; it is also logged as a warning.

    Examples
    --------
    >>> model = TopicModel(n_topics=20, epochs=50, patience=5)  # doctest: +SKIP
    >>> theta = model.fit_transform(texts)                      # doctest: +SKIP
    >>> model.get_topics(10)[0]                                  # doctest: +SKIP
    """

    def __init__(
        self,
        n_topics: int = DEFAULTS["n_topics"],
        *,
        hidden_size: int | None = DEFAULTS["hidden_size"],
        embedding_size: int | None = DEFAULTS["embedding_size"],
        embeddings: Any = None,
        corpus_embeddings: bool | None = DEFAULTS["corpus_embeddings"],
        corpus_embedding_method: str | None = DEFAULTS["corpus_embedding_method"],
        fine_tune_embeddings: bool = DEFAULTS["fine_tune_embeddings"],
        missing_embeddings: str = DEFAULTS["missing_embeddings"],
        activation: str = DEFAULTS["activation"],
        dropout: float = DEFAULTS["dropout"],
        background: bool = DEFAULTS["background"],
        similarity: str = DEFAULTS["similarity"],
        temperature: float | None = DEFAULTS["temperature"],
        decoder: str = DEFAULTS["decoder"],
        ecr_weight: float | None = DEFAULTS["ecr_weight"],
        ecr_alpha: float = DEFAULTS["ecr_alpha"],
        ecr_word_mass: str = DEFAULTS["ecr_word_mass"],
        epochs: int = DEFAULTS["epochs"],
        batch_size: int | None = DEFAULTS["batch_size"],
        lr: float = DEFAULTS["lr"],
        optimizer: str = DEFAULTS["optimizer"],
        weight_decay: float = DEFAULTS["weight_decay"],
        clip: float = DEFAULTS["clip"],
        bow_norm: bool = DEFAULTS["bow_norm"],
        anneal_lr: bool = DEFAULTS["anneal_lr"],
        nonmono: int = DEFAULTS["nonmono"],
        lr_factor: float = DEFAULTS["lr_factor"],
        patience: int | None = DEFAULTS["patience"],
        kl_warmup: int = DEFAULTS["kl_warmup"],
        kl_weight: float = DEFAULTS["kl_weight"],
        lr_schedule: str = DEFAULTS["lr_schedule"],
        ema_decay: float = DEFAULTS["ema_decay"],
        lazy_updates: bool = DEFAULTS["lazy_updates"],
        encoder_token_drop: float = DEFAULTS["encoder_token_drop"],
        valid_size: float = DEFAULTS["valid_size"],
        seed_topics: Any = None,
        n_free_topics: int | None = DEFAULTS["n_free_topics"],
        seed_strength: float = DEFAULTS["seed_strength"],
        seed_schedule: str = DEFAULTS["seed_schedule"],
        seed_init: bool = DEFAULTS["seed_init"],
        seed_doc_prior: float = DEFAULTS["seed_doc_prior"],
        seed_doc_centered: bool = DEFAULTS["seed_doc_centered"],
        preprocessor: Preprocessor | None = None,
        device: str = "auto",
        random_state: int | None = DEFAULTS["random_state"],
        n_init: int = DEFAULTS["n_init"],
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int = DEFAULTS["checkpoint_every"],
        verbose: bool = False,
    ) -> None:
        self.n_topics = n_topics
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.embeddings = embeddings
        self.corpus_embeddings = corpus_embeddings
        self.corpus_embedding_method = corpus_embedding_method
        self.fine_tune_embeddings = fine_tune_embeddings
        self.missing_embeddings = missing_embeddings
        self.activation = activation
        self.dropout = dropout
        self.background = background
        self.similarity = similarity
        self.temperature = temperature
        self.decoder = decoder
        self.ecr_weight = ecr_weight
        self.ecr_alpha = ecr_alpha
        self.ecr_word_mass = ecr_word_mass
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.clip = clip
        self.bow_norm = bow_norm
        self.anneal_lr = anneal_lr
        self.nonmono = nonmono
        self.lr_factor = lr_factor
        self.patience = patience
        self.kl_warmup = kl_warmup
        self.kl_weight = kl_weight
        self.lr_schedule = lr_schedule
        self.ema_decay = ema_decay
        self.lazy_updates = lazy_updates
        self.encoder_token_drop = encoder_token_drop
        self.valid_size = valid_size
        self.seed_topics = seed_topics
        self.n_free_topics = n_free_topics
        self.seed_strength = seed_strength
        self.seed_schedule = seed_schedule
        self.seed_init = seed_init
        self.seed_doc_prior = seed_doc_prior
        self.seed_doc_centered = seed_doc_centered
        self.preprocessor = preprocessor
        self.device = device
        self.random_state = random_state
        self.n_init = n_init
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.verbose = verbose

    # -- helpers ----------------------------------------------------------------
    def _validate_params(self) -> None:
        validate_options({name: getattr(self, name) for name in DEFAULTS})
        check_value("device", self.device, "str")
        check_value("checkpoint_dir", self.checkpoint_dir, "path", nullable=True)
        check_value("verbose", self.verbose, "bool")
        if self.preprocessor is not None and not isinstance(self.preprocessor, Preprocessor):
            raise TypeError(f"preprocessor must be an etm Preprocessor or None, got {type(self.preprocessor).__name__}")

    def _training_config(self) -> TrainingConfig:
        """The training loop's settings: every option of the table that feeds one, then the resolved ones."""
        settings = {o.config: getattr(self, o.name) for o in OPTIONS.values() if o.config and o.estimator}
        settings.update(epochs=self.epochs_, batch_size=self.batch_size_, kl_weight=self.kl_weight_,
                        eval_batch_size=max(self.batch_size_, 1000), seed=self.init_seed_)
        return TrainingConfig(**settings)

    def _ecr_weight(self, corpus: Any, train_totals: Callable[[], np.ndarray], recipe: dict[str, Any],
                    seeded: bool) -> float:
        """``ecr_weight``, or by rule the recipe's weight per token x the mean training-document length.

        Why: the reconstruction term of a document grows with its length and
        the clustering term does not, so one weight would be 14 times stronger
        on six-word titles than on 82-token messages (the rule gives 10.3 on
        the authors' 20 Newsgroups, where 10 was chosen). 0 for seeded
        models, whose seed words keep topics apart and whose labelling
        accuracy it lowered on validation (docs/benchmarks/recipe.md,
        docs/benchmarks/seeded.md).
        """
        if self.ecr_weight is not None:
            return float(self.ecr_weight)
        per_token = recipe["ecr_weight_per_token"]
        if seeded or not per_token:
            return 0.0
        return float(per_token * _mean_train_length(corpus, train_totals))

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This TopicModel instance is not fitted yet. Call 'fit' with appropriate arguments first."
            )

    def _as_prepared(self, X: Any, vocabulary: Sequence[str] | None) -> CorpusSource:
        """Turn any supported input into a corpus source with train/valid parts; sets ``preprocessor_``."""
        self.preprocessor_: Preprocessor | None = None
        if isinstance(X, CorpusSource):  # in memory or sharded: used as it is
            return X
        valid = self.valid_size
        if isinstance(X, Corpus):
            return X.split(valid_size=valid, test_size=0.0, random_state=self.random_state_)
        if sp.issparse(X):
            vocab = list(vocabulary) if vocabulary is not None else [f"w{i}" for i in range(X.shape[1])]
            corpus, dropped = Corpus(X, vocab).drop_empty()
            if dropped:
                logger.warning("%d documents without any word were left out of training", dropped)
            return corpus.split(valid_size=valid, test_size=0.0, random_state=self.random_state_)
        if isinstance(X, np.ndarray) and X.dtype.kind in "iuf":
            raise TypeError("dense count matrices are not accepted: pass scipy.sparse.csr_matrix(X)")
        _check_documents_input(X, "fit")
        from etm.corpus import RawDocuments, prepare_corpus

        texts = list(X)
        if vocabulary is not None:
            raise ValueError("vocabulary= is for bag-of-words input; texts get their vocabulary from the preprocessor")
        pre = Preprocessor() if self.preprocessor is None else _copy_preprocessor(self.preprocessor)
        raw = RawDocuments(texts=texts, labels=None, doc_ids=None, splits=None, source="fit(texts)")
        prepared, report = prepare_corpus(raw, pre, valid_size=valid, test_size=0.0, random_state=self.random_state_)
        self.preprocessor_ = pre
        self.prepare_report_ = report
        return prepared

    def _counts_for(self, X: Any, method: str) -> tuple[sp.csr_matrix, dict[str, int]]:
        """Bag-of-words over the model's vocabulary for new input, with a report."""
        self._check_is_fitted()
        report: dict[str, int] = {}
        if isinstance(X, CorpusSource):  # its training documents (a sharded corpus's read shard by shard)
            check_same_vocabulary(X.vocabulary, self.vocabulary_, left="corpus", right="model")
            chunks = [chunk.counts for chunk, _, _ in X.document_chunks(100_000, parts=("train",))]
            X = Corpus(sp.vstack(chunks, format="csr") if chunks else sp.csr_matrix((0, len(X.vocabulary))),
                       X.vocabulary)
        if isinstance(X, Corpus):
            check_same_vocabulary(X.vocabulary, self.vocabulary_, left="corpus", right="model")
            counts = X.counts
        elif sp.issparse(X):
            if X.shape[1] != len(self.vocabulary_):
                raise ValueError(
                    f"corpus has {X.shape[1]} columns, model vocabulary has {len(self.vocabulary_)} words"
                )
            counts = sp.csr_matrix(X)
        else:
            _check_documents_input(X, method)
            if self.preprocessor_ is None:
                raise TypeError(
                    f"this model was trained on bags of words, so {method} needs a sparse (D, V) matrix or a "
                    "Corpus over its vocabulary, not texts"
                )
            counts, n_unknown = self.preprocessor_.transform_with_report(list(X))
            report["unknown_tokens"] = int(n_unknown)
            if n_unknown:
                logger.info("%d tokens are not in the model's vocabulary and were ignored", n_unknown)
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        report["documents"] = int(counts.shape[0])
        report["empty_documents"] = int((lengths == 0).sum())
        if report["empty_documents"]:
            logger.warning(
                "%d of %d documents have no word of the model's vocabulary; their topic proportions are "
                "the encoder's output for an empty document",
                report["empty_documents"], counts.shape[0],
            )
        return sp.csr_matrix(counts, dtype=np.float32), report

    # -- scikit-learn API -----------------------------------------------------
    def fit(
        self, X: Any, y: None = None, *, vocabulary: Sequence[str] | None = None, resume: bool = False,
        on_epoch_end: Callable[[int, ETM, dict[str, Any]], None] | None = None,
    ) -> TopicModel:
        """Train on texts, a :class:`Corpus`, a prepared corpus (in memory or sharded) or a CSR matrix.

        Parameters
        ----------
        X : list of str, Corpus, CorpusSource (PreparedCorpus, ShardedCorpus) or sparse matrix of shape (D, V)
        y : ignored
        vocabulary : sequence of str of length V, optional
            Column words when ``X`` is a sparse matrix.
        resume : bool
            Continue from the checkpoint in ``checkpoint_dir`` when there is one.
        on_epoch_end : callable, optional
            ``f(epoch, model, record)`` after each epoch's validation (see
            :func:`etm.training.train`): it may add keys to ``record`` (the
            ``history_`` entry) and stop training by raising (e.g.
            ``optuna.TrialPruned``; :mod:`etm.tuning` prunes trials this way).
        """
        self._validate_params()
        self.random_state_ = (
            int(self.random_state)
            if self.random_state is not None
            else int(np.random.SeedSequence().generate_state(1)[0] % (2**31))
        )
        seeds = self._seed_topics()
        n_topics = self._n_topics(seeds)
        self._check_checkpoint_layout(resume)
        corpus = self._as_prepared(X, vocabulary)
        reference = self._restart_reference(corpus) if self.n_init > 1 else None  # checked before any training
        vocab = corpus.vocabulary
        if n_topics > len(vocab):
            raise ValueError(
                f"n_topics={n_topics} is more than the {len(vocab)} words of the vocabulary; "
                "use fewer topics or a larger vocabulary (lower min_df)"
            )
        resolved = None if seeds is None else seeds.resolve(vocab)
        train_totals = functools.cache(lambda: _train_word_totals(corpus))  # one pass over sharded corpora
        # the seed prior holds no training state: n_init's runs share it (its centring is a pass over the corpus)
        seed_prior = None if resolved is None else functools.cache(lambda: self._seed_prior(resolved, corpus,
                                                                                           train_totals()))
        self._resolve_settings(corpus, train_totals, seeded=seeds is not None)
        device = resolve_device(self.device)
        self.device_ = str(device)
        aligned = self._aligned_embeddings(vocab, corpus)
        self.embedding_report_ = None if aligned is None else aligned.report()
        self.topic_names_ = _topic_names(n_topics, seeds)
        self.restarts_ = None  # the checkpoints' metadata must not carry a previous fit's runs
        run = functools.partial(self._train_once, corpus, n_topics, aligned, train_totals, resolved, seed_prior,
                                device, resume=resume, on_epoch_end=on_epoch_end)
        if self.n_init == 1:
            result, self.restarts_ = run(self.random_state_, self.checkpoint_dir), None
            seconds = result.seconds
        else:
            result, self.restarts_ = self._best_of_restarts(run, reference)
            seconds = sum(r["seconds"] for r in self.restarts_)
        self._set_fitted(result.model.to("cpu"), list(vocab))
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self.best_epoch_ = result.best_epoch
        self.valid_perplexity_ = result.best_valid_perplexity
        self.training_seconds_ = seconds
        self._report_collapse(corpus.n_docs("train"))
        return self

    def _train_once(self, corpus: CorpusSource, n_topics: int, aligned: Any, train_totals: Callable[[], np.ndarray],
                    resolved: Any, seed_prior: Callable[[], Any] | None, device: torch.device, seed: int,
                    checkpoint_dir: Any, *, resume: bool,
                    on_epoch_end: Callable[[int, ETM, dict[str, Any]], None] | None) -> Any:
        """Build and train one network from ``seed`` (its initialisation and training noise; ``init_seed_``)."""
        self.init_seed_ = int(seed)
        model = self._build_model(n_topics, len(corpus.vocabulary), aligned, train_totals)
        regularizer = None
        self.seed_report_ = None
        self.seed_words_ = None
        if resolved is not None and seed_prior is not None:
            self._prepare_seeding(model, resolved, corpus)
            regularizer = seed_prior()
        if self.ecr_weight_ > 0:
            mass = word_mass(train_totals(), self.ecr_word_mass)
            regularizer = combine(regularizer, EmbeddingClustering(self.ecr_weight_, self.ecr_alpha, word_mass=mass))
        return train(
            model,
            corpus,
            self._training_config(),
            device=device,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            verbose=self.verbose,
            extra_metadata=self._metadata(),
            on_epoch_end=on_epoch_end,
            regularizer=regularizer,
        )

    def _restart_checkpoints(self, i: int) -> Path | None:
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / f"init-{i}"

    def _restart_reference(self, corpus: CorpusSource) -> sp.csr_matrix:
        """The validation documents ``n_init`` chooses on (an error without any, a warning with few)."""
        reference = validation_reference(corpus, purpose=f"n_init={self.n_init} chooses among its runs")
        if reference.shape[0] < FEW_VALIDATION_DOCUMENTS:
            logger.warning("n_init=%d chooses on %d validation documents; with fewer than %d the choice is "
                           "unreliable (docs/guide/training.md): give the corpus a larger validation split",
                           self.n_init, reference.shape[0], FEW_VALIDATION_DOCUMENTS)
        return reference

    def _best_of_restarts(self, run: Callable[..., Any], reference: sp.csr_matrix) -> tuple[Any, list[dict[str, Any]]]:
        """Train ``n_init`` runs and keep the one of best validation quality; every run's scores, in order.

        Each run checkpoints into ``checkpoint_dir/init-i``, so a resumed fit
        finds the finished runs complete (they load, nothing retrains) and
        continues the interrupted one where it stopped.
        """
        best, restarts = None, []
        for i in range(self.n_init):
            seed = restart_seed(self.random_state_, i)
            result = run(seed, self._restart_checkpoints(i))
            scores = validation_quality(get_topic_word(result.model), reference)
            restarts.append({"seed": seed, **scores, "valid_perplexity": result.best_valid_perplexity,
                             "best_epoch": result.best_epoch, "epochs": len(result.history),
                             "seconds": result.seconds})
            logger.info("run %d of %d (seed %d): validation quality %.4f (coherence %.4f, diversity %.3f), "
                        "perplexity %s", i + 1, self.n_init, seed, scores["quality"], scores["coherence"],
                        scores["diversity"], "n/a" if result.best_valid_perplexity is None
                        else f"{result.best_valid_perplexity:.1f}")
            if best is None or scores["quality"] > restarts[best[0]]["quality"]:
                best = (i, result)
            else:
                del result
        assert best is not None
        self.init_seed_ = restarts[best[0]]["seed"]
        logger.info("kept run %d of %d (seed %d)", best[0] + 1, self.n_init, self.init_seed_)
        return best[1], restarts

    def _check_checkpoint_layout(self, resume: bool) -> None:
        """Refuse checkpoints of another ``n_init`` layout, or any to overwrite, rather than start afresh silently.

        ``n_init=1`` checkpoints into ``checkpoint_dir/last``, ``n_init > 1``
        into ``checkpoint_dir/init-i/last``.
        """
        if self.checkpoint_dir is None:
            return
        root = Path(self.checkpoint_dir)
        found = run_checkpoints(root)
        runs, single = [name for name in found if name != "last"], "last" in found
        if not resume:
            if runs and not (single and self.n_init == 1):  # a lone last/ is refused by the training loop itself
                raise ValueError(f"{root} already holds training checkpoints ({', '.join(runs)} of n_init > 1); "
                                 "pass resume=True (etm train --resume) to continue them, or another checkpoint "
                                 "directory to start afresh")
            return
        if self.n_init == 1 and runs and not single:
            raise ValueError(f"{root} holds the checkpoints of {len(runs)} runs of n_init > 1 ({', '.join(runs)}); "
                             f"resume with n_init={len(runs)} or more (etm train --n-init), or use another "
                             "checkpoint directory")
        if self.n_init > 1 and single:
            raise ValueError(f"{root / 'last'} is the checkpoint of a single run (n_init=1); resume it with n_init=1, "
                             "or use another checkpoint directory")

    def _resolve_settings(self, corpus: CorpusSource, train_totals: Callable[[], np.ndarray], seeded: bool) -> None:
        """Set ``decoder_``, ``temperature_``, ... (``_RESOLVED_SETTINGS``): each automatic (None) setting, resolved."""
        self.decoder_ = self.decoder or "product"  # None: models saved before "product" was the table's default
        recipe = DECODER_DEFAULTS[self.decoder_]
        self.temperature_ = recipe["temperature"] if self.temperature is None else self.temperature
        self.kl_weight_ = recipe["kl_weight"] if self.kl_weight is None else self.kl_weight
        self.hidden_size_ = int(recipe["hidden_size"]) if self.hidden_size is None else self.hidden_size
        self.ecr_weight_ = self._ecr_weight(corpus, train_totals, recipe, seeded=seeded)
        self.corpus_embeddings_ = self._corpus_embeddings(corpus, train_totals)
        self.corpus_embedding_method_ = self._corpus_embedding_method(corpus, train_totals)
        n_train = corpus.n_docs("train")
        self.batch_size_ = self.batch_size if self.batch_size is not None else auto_batch_size(n_train)
        self.epochs_ = self.epochs if self.epochs is not None else auto_epochs(n_train, self.batch_size_)

    def _corpus_embeddings(self, corpus: CorpusSource, train_totals: Callable[[], np.ndarray]) -> bool:
        """``corpus_embeddings``, or by rule: on for short documents when no pretrained ``embeddings`` are given.

        Why: on six-word titles (OCTIS M10) the jointly learned embeddings
        put rare words at the top of topics (NPMI coherence -0.26 at K = 50)
        and fixed skip-gram vectors of the same titles do not (-0.02, above
        LDA's -0.09, with more diverse topics); on 20NG messages cut to 42
        tokens they raise quality by a third, while on the whole 82-token
        messages the learned ones keep the better quality (0.315 against
        0.299). See docs/benchmarks/recipe.md, "Ninth session".
        """
        if self.embeddings is not None:
            if self.corpus_embeddings:
                raise ValueError("corpus_embeddings=True learns the word embeddings from the corpus; it cannot be "
                                 "combined with pretrained `embeddings` (pass one or the other)")
            return False
        if self.corpus_embeddings is not None:
            return bool(self.corpus_embeddings)
        return _mean_train_length(corpus, train_totals) < SHORT_DOCUMENT_TOKENS

    def _corpus_embedding_method(self, corpus: CorpusSource, train_totals: Callable[[], np.ndarray]) -> str | None:
        """``corpus_embedding_method``, or by rule: PPMI on documents of fewer than ``PPMI_DOCUMENT_TOKENS``.

        Why: with the corpus's PPMI vectors topic quality is as good as with
        its skip-gram vectors or better on subject lines, titles and 20NG
        messages cut to 10 and 25 tokens (on CiteSeer-M10 at K = 100 2.5x),
        in a second instead of skip-gram's ten or so, but 8% lower on
        messages cut to 42 tokens. See docs/benchmarks/recipe.md, "Twelfth
        session". None when no corpus vectors are used.
        """
        if not self.corpus_embeddings_:
            return None
        if self.corpus_embedding_method is not None:
            return self.corpus_embedding_method
        return "ppmi" if _mean_train_length(corpus, train_totals) < PPMI_DOCUMENT_TOKENS else "skipgram"

    def _build_model(self, n_topics: int, n_words: int, aligned: Any, train_totals: Callable[[], np.ndarray]) -> ETM:
        """The network for the resolved settings, seeded by ``init_seed_``; on ``aligned`` vectors when given."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed_)
            # the product decoder learns each word's shift itself (its batch normalisation's bias)
            wants_background = self.background and self.decoder_ == "mixture"
            background = log_word_frequency(train_totals()) if wants_background else None
            common = {"theta_act": self.activation, "enc_drop": self.dropout, "background": background,
                      "similarity": self.similarity, "temperature": self.temperature_, "decoder": self.decoder_}
            if aligned is None:
                return ETM(n_topics, n_words, self.hidden_size_, self._learned_embedding_size(), **common)
            learn_missing = self.missing_embeddings == "train" and not self.fine_tune_embeddings
            return ETM(
                n_topics,
                n_words,
                self.hidden_size_,
                aligned.vectors.shape[1],
                embeddings=torch.from_numpy(aligned.vectors),
                train_embeddings=self.fine_tune_embeddings,
                trainable_rows=aligned.missing_rows if learn_missing else None,
                **common,
            )

    def _report_collapse(self, n_train: int) -> None:
        """Warn, with cause and remedy, when the topics came out as copies of each other (``collapse_``)."""
        steps = self.n_iter_ * -(-n_train // self.batch_size_)
        report = detect_collapse(self.topic_word_, steps=steps, batch_size=self.batch_size_, n_documents=n_train,
                                 epochs=self.n_iter_)
        self.collapse_ = None if report is None else report.as_dict()
        if report is not None:
            logger.warning("%s", report.message)

    def _seed_topics(self) -> Any:
        from etm.seeding import SeedTopics, read_seed_file

        if self.seed_topics is None:
            if self.n_free_topics is not None:
                raise ValueError("n_free_topics only applies with seed_topics; use n_topics")
            return None
        if isinstance(self.seed_topics, (str, os.PathLike)):
            return read_seed_file(self.seed_topics)
        return SeedTopics.from_mapping(self.seed_topics)

    def _n_topics(self, seeds: Any) -> int:
        if seeds is None:
            return int(self.n_topics)
        if self.n_free_topics is not None:
            return len(seeds) + int(self.n_free_topics)
        if len(seeds) > self.n_topics:
            raise ValueError(
                f"{len(seeds)} seeded topics but n_topics={self.n_topics}; raise n_topics or set n_free_topics"
            )
        if len(seeds) == self.n_topics:
            logger.warning("every topic is seeded: no free topic is left to catch other themes")
        return int(self.n_topics)

    def _prepare_seeding(self, model: ETM, resolved: Any, corpus: CorpusSource) -> None:
        """Initialise a network's seeded topic embeddings; record the seed words and report."""
        from etm.seeding import seed_centroids

        rows = resolved.indices
        if self.seed_init:
            centroids = seed_centroids(model.rho.weight.detach().cpu().numpy(), rows)
            with torch.no_grad():
                model.alphas.weight[: len(rows)] = torch.as_tensor(centroids, dtype=model.alphas.weight.dtype)
        self.seed_words_ = {name: [str(corpus.vocabulary[i]) for i in r] for name, r in zip(resolved.seeds.names, rows)}
        self.seed_report_ = resolved.report()

    def _seed_prior(self, resolved: Any, corpus: CorpusSource, train_totals: np.ndarray) -> Any:
        """The seed prior (see :mod:`etm.seeding`), its document prior centred on the training documents."""
        from etm.seeding import SeedPrior

        prior = SeedPrior(resolved.indices, train_totals, corpus.n_docs("train"), strength=self.seed_strength,
                          schedule=self.seed_schedule, doc_strength=self.seed_doc_prior)
        if self.seed_doc_centered and self.seed_doc_prior > 0:
            prior.centre_on(chunk.counts for chunk, _, _ in corpus.document_chunks(100_000, parts=("train",)))
        return prior

    def _learned_embedding_size(self) -> int:
        """E of embeddings etm makes itself (learned with the topics, or the corpus's skip-gram): 300 unless given."""
        return 300 if self.embedding_size is None else int(self.embedding_size)

    def _aligned_embeddings(self, vocabulary: Sequence[str], corpus: CorpusSource) -> Any:
        """``embeddings`` in the vocabulary's order, ``corpus``'s own vectors, or None (the unlabelled ETM)."""
        from etm.embeddings import AlignedEmbeddings, align_embeddings, corpus_vectors, load_embeddings

        given = self.embeddings
        if given is None:
            if self.corpus_embeddings_:
                return corpus_vectors(corpus, self.corpus_embedding_method_,
                                      vector_size=self._learned_embedding_size(), seed=self.random_state_)
            if self.fine_tune_embeddings:
                raise ValueError("fine_tune_embeddings=True needs embeddings to start from: pretrained `embeddings` "
                                 "or corpus_embeddings=True")
            return None
        if isinstance(given, (str, os.PathLike)):
            aligned = load_embeddings(given, vocabulary, random_state=self.random_state_)
        elif isinstance(given, AlignedEmbeddings):
            if list(given.vocabulary) != list(vocabulary):
                check_same_vocabulary(given.vocabulary, vocabulary, left="embeddings", right="corpus")
            aligned = given
        elif isinstance(given, (np.ndarray, torch.Tensor)):
            array = np.asarray(given.detach().cpu() if torch.is_tensor(given) else given, dtype=np.float32)
            if array.ndim != 2 or array.shape[0] != len(vocabulary):
                raise ValueError(
                    f"embeddings array has shape {array.shape}; expected (V={len(vocabulary)}, E) in vocabulary order"
                )
            if not np.isfinite(array).all():
                raise ValueError("embeddings array contains NaN or infinity")
            aligned = AlignedEmbeddings(array, np.ones(len(vocabulary), dtype=bool), "array", list(vocabulary))
        else:
            aligned = align_embeddings(given, vocabulary, random_state=self.random_state_,
                                       source=type(given).__name__)
        dim = int(aligned.vectors.shape[1])
        if self.embedding_size is not None and self.embedding_size != dim:
            raise ValueError(
                f"embedding_size={self.embedding_size} but the pretrained embeddings have {dim} dimensions; "
                "leave embedding_size=None to take the embeddings' size"
            )
        return aligned

    def _set_fitted(self, model: ETM, vocabulary: list[str]) -> None:
        self.model_ = model.eval()
        self.vocabulary_ = vocabulary
        with torch.no_grad():
            self.topic_word_ = get_topic_word(model)
            self.topic_embeddings_ = model.alphas.weight.detach().cpu().numpy().copy()
            self.word_embeddings_ = model.rho.weight.detach().cpu().numpy().copy()

    def _metadata(self) -> dict[str, Any]:
        params = self.get_params(deep=False)  # deep would add preprocessor__* copies of the preprocessor's settings
        params["preprocessor"] = None if self.preprocessor is None else self.preprocessor.settings()
        params["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        # The vectors themselves are in the model file; keep only where they came from.
        params["embeddings"] = str(self.embeddings) if isinstance(self.embeddings, (str, os.PathLike)) else None
        seeds = self.seed_topics
        if seeds is not None and not isinstance(seeds, (str, os.PathLike)):
            seeds = {str(k): [str(w) for w in v] for k, v in (seeds.as_dict() if hasattr(seeds, "as_dict")
                                                               else dict(seeds)).items()}
        params["seed_topics"] = str(seeds) if isinstance(seeds, (str, os.PathLike)) else seeds
        pre = getattr(self, "preprocessor_", None)
        return {
            "estimator": params,
            # what fit resolved the None (automatic) settings to, so that a loaded model reports them too
            "resolved": {name[:-1]: getattr(self, name, None) for name in _RESOLVED_SETTINGS},
            "topic_names": getattr(self, "topic_names_", None),
            "seeding": None if getattr(self, "seed_words_", None) is None else {
                "seed_words": self.seed_words_, "report": self.seed_report_},
            "embeddings": getattr(self, "embedding_report_", None),
            "random_state": self.random_state_,
            "init_seed": getattr(self, "init_seed_", None),
            "restarts": getattr(self, "restarts_", None),
            "preprocessing": None if pre is None else pre.settings(),
        }

    def transform(self, X: Any) -> np.ndarray:
        """Topic proportions theta of each document, shape (D, K).

        Deterministic: uses the posterior mean. Words outside the model's
        vocabulary are ignored and counted (logged at INFO).
        """
        counts, _ = self._counts_for(X, "transform")
        return self._theta(counts)

    def transform_with_report(self, X: Any) -> tuple[np.ndarray, dict[str, int]]:
        """:meth:`transform` plus counts of documents, empty documents and unknown tokens."""
        counts, report = self._counts_for(X, "transform")
        return self._theta(counts), report

    def transform_with_lengths(self, X: Any) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """:meth:`transform_with_report` plus each document's count of vocabulary words, shape (D,).

        A length of 0 marks a document the model knows no word of: its theta
        row is the encoder's output for an empty input, the same for all such
        documents, so :meth:`label_theta` labels it "none".
        """
        counts, report = self._counts_for(X, "transform")
        return self._theta(counts), np.asarray(counts.sum(axis=1)).ravel(), report

    def _theta(self, counts: sp.csr_matrix) -> np.ndarray:
        device = resolve_device(self.device)
        self.model_.to(device)
        try:
            return infer_theta(self.model_, counts, batch_size=max(self.batch_size or 1000, 1000),
                               bow_norm=self.bow_norm, device=device)
        finally:
            self.model_.to("cpu")

    def get_topics(self, n: int = 10) -> list[list[str]]:
        """The ``n`` most probable words of each topic."""
        self._check_is_fitted()
        return top_words(self.topic_word_, self.vocabulary_, n)

    def nearest_words(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` words whose embeddings are closest (cosine) to ``word``'s."""
        from etm.neighbors import nearest_words

        self._check_is_fitted()
        return nearest_words(word, self.word_embeddings_, self.vocabulary_, n)

    def topic_neighbors(self, n: int = 10) -> list[list[tuple[str, float]]]:
        """For each topic, the ``n`` words nearest (cosine) to its embedding."""
        from etm.neighbors import topic_neighbors

        self._check_is_fitted()
        return topic_neighbors(self.topic_embeddings_, self.word_embeddings_, self.vocabulary_, n)

    def words_near(self, vector: np.ndarray, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` vocabulary words closest (cosine) to any vector of the embedding space."""
        from etm.neighbors import nearest_to_vector

        self._check_is_fitted()
        return nearest_to_vector(vector, self.word_embeddings_, self.vocabulary_, n)

    # -- seeded topics -----------------------------------------------------------
    @property
    def n_seeded_topics_(self) -> int:
        """How many of the first topics are seeded (0 for an unseeded model)."""
        return len(getattr(self, "seed_words_", None) or {})

    def predict_with_proportion(self, X: Any, *, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Each document's most probable *seeded* topic (its name) and that topic's proportion.

        Documents whose best seeded proportion is below ``threshold``, and
        documents without any word of the model's vocabulary, get "none"
        (the latter with proportion 0). On an unseeded model every topic
        counts, named ``topic_k``.
        """
        self._check_is_fitted()
        theta, lengths, _ = self.transform_with_lengths(X)
        return self.label_theta(theta, threshold=threshold, lengths=lengths)

    def label_theta(
        self, theta: np.ndarray, *, threshold: float = 0.0, lengths: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_with_proportion` on topic proportions already computed by :meth:`transform`.

        ``lengths`` (D,), the documents' counts of vocabulary words (see
        :meth:`transform_with_lengths`), labels those of length 0 "none" with
        proportion 0 instead of by the encoder's output for an empty input.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        n = self.n_seeded_topics_ or theta.shape[1]
        best = theta[:, :n].argmax(axis=1)
        share = theta[np.arange(theta.shape[0]), best]
        names = np.asarray(self.topic_names_[:n], dtype=object)
        labels = np.where(share >= threshold, names[best], "none").astype(object)
        if lengths is not None:
            empty = _empty_rows(lengths, theta.shape[0])
            labels[empty] = "none"
            share = np.where(empty, 0.0, share).astype(theta.dtype, copy=False)
        return labels, share

    def predict(self, X: Any, *, threshold: float = 0.0) -> np.ndarray:
        """The name of each document's most probable seeded topic ("none" below ``threshold``)."""
        return self.predict_with_proportion(X, threshold=threshold)[0]

    # -- pictures ----------------------------------------------------------------
    def plot_topics(self, path: str | os.PathLike[str], *, n_words: int = 10, topics: Sequence[int] | None = None):
        """Bar charts of each topic's most probable words (PNG/SVG/PDF from the suffix)."""
        from etm.plots import plot_top_words

        self._check_is_fitted()
        return plot_top_words(self.topic_word_, self.vocabulary_, path, n_words=n_words, topics=topics,
                              names=self.topic_names_)

    def plot_training(self, path: str | os.PathLike[str]):
        """Loss, KL and validation perplexity per epoch."""
        from etm.plots import plot_training_curves

        self._check_is_fitted()
        return plot_training_curves(self.history_, path)

    def plot_embeddings(self, path: str | os.PathLike[str], *, method: str = "pca", words_per_topic: int = 5):
        """Topic embeddings and their top words in a 2-D map ("pca" or "tsne")."""
        from etm.plots import plot_embedding_map

        self._check_is_fitted()
        return plot_embedding_map(self.word_embeddings_, self.topic_embeddings_, self.vocabulary_, path,
                                  topic_word=self.topic_word_, words_per_topic=words_per_topic, method=method,
                                  names=self.topic_names_, random_state=self.random_state_)

    def plot_prevalence(self, X: Any, path: str | os.PathLike[str]):
        """Mean topic proportion over the documents ``X``, largest first."""
        from etm.plots import plot_topic_prevalence

        return plot_topic_prevalence(self.transform(X), path, top_words=self.get_topics(4), names=self.topic_names_)

    def export_pyldavis(self, X: Any, directory: str | os.PathLike[str], *, html: bool | None = None):
        """pyLDAvis inputs for the documents ``X`` as ``ldavis.json`` (+ ``ldavis.html`` with pyLDAvis)."""
        from etm.plots import export_pyldavis

        counts, _ = self._counts_for(X, "export_pyldavis")
        return export_pyldavis(directory, self.topic_word_, self._theta(counts), counts, self.vocabulary_, html=html,
                               names=self.topic_names_)

    def report(self, path: str | os.PathLike[str], X: Any = None, *, documents: Any = None, **options: Any):
        """One self-contained HTML page about the model (opens from disk, no network); returns its path.

        ``X``: the documents behind prevalence, coherence, representative
        documents and the pyLDAvis view: a prepared corpus (its training
        part), a :class:`Corpus`, a sparse (D, V) matrix or texts (which then
        also give the snippets). ``documents``: raw texts for the snippets
        (sequence, mapping id -> text, or a raw file); ``options``: those of
        :func:`etm.report.write_report` (``n_words``, ``n_documents``,
        ``max_documents``, ``map_words``, ``search_words``, ``method``, ``title`` ...).
        """
        from etm.report import write_report

        self._check_is_fitted()
        if X is not None and not isinstance(X, (CorpusSource, Corpus)):
            counts, _ = self._counts_for(X, "report")
            if documents is None and not sp.issparse(X):
                documents = [str(t) for t in X]
            X = Corpus(counts, self.vocabulary_)
        return write_report(self, path, X, documents=documents, **options)

    def perplexity(self, X: Any, *, per: str = "document", part: str = "test") -> float:
        """Document-completion perplexity on ``X``.

        Each document's tokens are split into two seeded random halves; theta
        is inferred from the first and the second is scored. ``per`` is
        "document" (the authors' average) or "token" (corpus level).
        A prepared corpus (:class:`~etm.corpus.CorpusSource`: in memory or
        sharded, whose halves are streamed piece by piece) is scored on the
        halves of its ``part`` ("test" or "valid").
        """
        if per not in ("document", "token"):
            raise ValueError(f"per must be 'document' or 'token', got {per!r}")
        scores = self._completion_scores(X, part)
        return scores.perplexity_per_document if per == "document" else scores.perplexity_per_token

    def _completion_scores(self, X: Any, part: str = "test") -> CompletionScores:
        """Document-completion scores of ``X`` (its ``part`` halves for a corpus source), the one implementation."""
        self._check_is_fitted()
        if isinstance(X, CorpusSource):
            check_same_vocabulary(X.vocabulary, self.vocabulary_, left="corpus", right="model")
            chunks = [pair for pair in X.completion_chunks(part) if pair[0].shape[0] > 0]
            if not chunks:
                raise ValueError(f"the corpus has no {part} halves to score; prepare it with a {part} split")
        else:
            counts, _ = self._counts_for(X, "perplexity")
            first, second, kept = split_halves(counts.astype(np.int64), self.random_state_)
            if kept.size == 0:
                raise ValueError("no document has the 2 or more known tokens document completion needs")
            chunks = [(first, second)]
        device = resolve_device(self.device)
        self.model_.to(device)
        try:
            return evaluate_completion_chunks(self.model_, chunks, batch_size=max(self.batch_size or 1000, 1000),
                                              bow_norm=self.bow_norm, device=device)
        finally:
            self.model_.to("cpu")

    def score(self, X: Any, y: None = None) -> float:
        """Negative document-completion perplexity (greater is better, as scikit-learn expects)."""
        return -self.perplexity(X)

    def evaluate(self, reference: Any, completion: Any | None = None, *, part: str = "test") -> dict[str, float]:
        """Coherence (top 10, NPMI over ``reference``), diversity (top 25), quality, and perplexities.

        ``reference`` is the corpus whose document co-occurrences define
        coherence (the authors use the training documents: a prepared corpus,
        in memory or sharded, gives its training part, read piece by piece);
        ``completion`` is scored for perplexity when given (a prepared corpus
        on the halves of its ``part``), adding ``perplexity_per_document``,
        ``perplexity_per_token`` and ``completion_documents``.
        """
        self._check_is_fitted()
        top = top_word_indices(self.topic_word_, 10)
        if isinstance(reference, CorpusSource):  # co-occurrence needs only the top words' columns
            check_same_vocabulary(reference.vocabulary, self.vocabulary_, left="corpus", right="model")
            columns = np.unique(top)
            pieces = [chunk.counts[:, columns] for chunk, _, _ in reference.document_chunks(100_000, parts=("train",))]
            counts = sp.vstack(pieces, format="csr") if pieces else sp.csr_matrix((0, columns.size))
            top = np.searchsorted(columns, top)
        else:
            counts, _ = self._counts_for(reference, "evaluate")
        coherence = topic_coherence(top, counts)
        diversity = topic_diversity(top_word_indices(self.topic_word_, 25))
        out = {"coherence": coherence, "diversity": diversity, "quality": topic_quality(coherence, diversity)}
        if completion is not None:
            scores = self._completion_scores(completion, part)
            out["perplexity_per_document"] = scores.perplexity_per_document
            out["perplexity_per_token"] = scores.perplexity_per_token
            out["completion_documents"] = scores.n_documents
        return out

    # -- persistence ------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Save as ``model.safetensors`` + ``config.json`` + ``vocab.txt`` (no pickles)."""
        self._check_is_fitted()
        extra = self._metadata()
        extra.update(
            {
                "history": self.history_,
                "best_epoch": self.best_epoch_,
                "valid_perplexity": self.valid_perplexity_,
                "provenance": getattr(self, "provenance_", None),
                "training_seconds": getattr(self, "training_seconds_", None),
                "collapse": getattr(self, "collapse_", None),
            }
        )
        save_model(directory, self.model_, self.vocabulary_, extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, device: str = "auto") -> TopicModel:
        """Load a model saved by :meth:`save` or by ``etm train``."""
        model, vocab, config = load_model(directory)
        params = dict(config.get("estimator") or {})
        params["preprocessor"] = _saved_preprocessor(params, config, directory)
        valid = set(cls().get_params(deep=False))
        unknown = sorted(set(params) - valid)
        if unknown:
            logger.warning("ignoring unknown estimator settings in %s: %s", directory, unknown)
        params = {k: v for k, v in params.items() if k in valid}
        params["device"] = device
        est = cls(**params)
        est.random_state_ = int(config.get("random_state") or 0)
        est.init_seed_ = int(config["init_seed"]) if config.get("init_seed") is not None else est.random_state_
        est.restarts_ = config.get("restarts")
        pre = config.get("preprocessing")
        est.preprocessor_ = None if pre is None else Preprocessor.from_settings(pre, vocabulary=vocab)
        est._set_fitted(model, vocab)
        est.history_ = list(config.get("history") or [])
        est.n_iter_ = len(est.history_)
        est.best_epoch_ = config.get("best_epoch")
        est.valid_perplexity_ = config.get("valid_perplexity")
        est.provenance_ = config.get("provenance")
        est.training_seconds_ = config.get("training_seconds")
        est.collapse_ = config.get("collapse")
        est._restore_resolved(config.get("resolved") or {}, model)
        est.embedding_report_ = config.get("embeddings")
        est.topic_names_ = list(config.get("topic_names") or _topic_names(model.num_topics, None))
        seeding = config.get("seeding") or {}
        est.seed_words_ = seeding.get("seed_words")
        est.seed_report_ = seeding.get("report")
        return est

    def _restore_resolved(self, resolved: dict[str, Any], model: ETM) -> None:
        """Set ``decoder_``, ``kl_weight_``, ``ecr_weight_``... of a loaded model as its fit resolved them.

        Models saved before these were recorded get what the network itself
        tells (decoder, temperature, encoder width) and None for the rest.
        """
        from_model = {"decoder": model.decoder, "temperature": model.temperature, "hidden_size": model.t_hidden_size}
        for name in _RESOLVED_SETTINGS:
            key = name[:-1]
            setattr(self, name, resolved.get(key, from_model.get(key)))
        self.device_ = str(resolve_device(self.device))


#: Below this many validation documents ``n_init``'s choice is noisy: over 300 of 20NG's test documents the
#: validation estimate ranks models with Kendall tau 0.70 against all 7,531, over 600 with 0.85
#: (docs/guide/tuning.md).
FEW_VALIDATION_DOCUMENTS = 500

#: Fitted attributes holding what ``fit`` resolved an automatic (None) setting to; saved and loaded.
_RESOLVED_SETTINGS = ("decoder_", "temperature_", "kl_weight_", "hidden_size_", "ecr_weight_", "corpus_embeddings_",
                      "corpus_embedding_method_", "batch_size_", "epochs_")


def restart_seed(random_state: int, i: int) -> int:
    """Seed of run ``i`` of ``n_init``: the first is ``random_state`` itself, so ``n_init=1`` changes nothing.

    It seeds the run's network (initialisation, dropout, noise, batch order);
    the split of texts into training and validation documents and the word
    embeddings (corpus skip-gram vectors, random rows for words missing from
    pretrained ones) keep ``random_state``'s, so every run sees the same
    documents and vectors. With embeddings learned with the topics (no
    ``embeddings``, no corpus vectors) on a prepared corpus,
    ``TopicModel(random_state=restart_seed(r, i))`` trains exactly run ``i`` of
    ``TopicModel(random_state=r, n_init=n)``.
    """
    if i == 0:
        return int(random_state)
    return int(np.random.SeedSequence([int(random_state), i]).generate_state(1)[0] % (2**31))


def _topic_names(n_topics: int, seeds: Any) -> list[str]:
    """Seeded topics keep their names; the others are ``topic_k`` (unseeded) or ``free_j``."""
    if seeds is None:
        return [f"topic_{k}" for k in range(n_topics)]
    return list(seeds.names) + [f"free_{j}" for j in range(n_topics - len(seeds))]


def _saved_preprocessor(params: dict[str, Any], config: dict[str, Any], directory: Any) -> Preprocessor | None:
    """The ``preprocessor`` parameter of a saved model, unfitted, so ``clone(loaded)`` tokenises as it did.

    Taken from the saved parameter, else from the preprocessing the model's
    vocabulary was made with (texts given to ``fit``, or ``etm train``'s
    corpus), else from the ``preprocessor__*`` keys older versions saved
    (popped from ``params``). None when the model never saw text.
    """
    legacy = {key.split("__", 1)[1]: params.pop(key) for key in list(params) if key.startswith("preprocessor__")}
    settings = params.get("preprocessor") or config.get("preprocessing") or legacy or None
    if settings is None:
        return None
    try:
        return Preprocessor.from_settings(settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{os.fspath(directory)}/config.json: bad preprocessing settings: {err}") from None


def _empty_rows(lengths: Any, n_rows: int) -> np.ndarray:
    """Boolean mask (D,) of documents with no vocabulary word, checking ``lengths`` matches theta's rows."""
    lengths = np.asarray(lengths).ravel()
    if lengths.shape != (n_rows,):
        raise ValueError(f"lengths has {lengths.size} entries but theta has {n_rows} rows")
    return lengths == 0


def _copy_preprocessor(pre: Preprocessor) -> Preprocessor:
    return Preprocessor(**pre.get_params())


def _mean_train_length(corpus: Any, train_totals: Callable[[], np.ndarray]) -> float:
    """Mean training-document length in tokens (the length rules of ``ecr_weight`` and the corpus vectors)."""
    return float(train_totals().sum() / max(corpus.n_docs("train"), 1))


def _train_word_totals(corpus: Any) -> np.ndarray:
    """Occurrences of each word in the training documents, in memory or streamed from shards."""
    return corpus.word_totals("train")
