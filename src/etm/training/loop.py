"""The training loop of :class:`etm.ETM` on sparse corpora.

Batches are CSR row slices turned into :class:`etm.model.SparseBatch` and moved
to the device inside the loop; nothing densifies the corpus. The best epoch is
chosen on the *validation* split's document-completion perplexity (the
authors' script used the test split), the learning-rate schedule follows the
authors' ``nonmono`` rule, and early stopping, exact resume from checkpoints
(:mod:`etm.training.checkpoint`), NaN detection and Ctrl-C handling come on top.
Inference lives in :mod:`etm.training.inference`, optimizers in :mod:`etm.training.optimizers`;
both are re-exported here.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from etm._io import recover_directory, remove_stray_temporaries
from etm.corpus.batching import batch_source, completion_chunks
from etm.corpus.memory import CorpusSource
from etm.device import reuse_freed_memory
from etm.model import ETM, SparseBatch
from etm.options import CONFIG_DEFAULTS, LR_SCHEDULES, validate_config
from etm.persistence import load_model, model_arguments, save_model
from etm.regularizers import load_state, reads_logits, reads_topics, reset_state, state_of
from etm.training.checkpoint import checkpoint_progress, read_checkpoint, restore_optimizer, write_checkpoint
from etm.training.distributed import all_sum, average_running_statistics, broadcast_float, rank_and_world
from etm.training.inference import (
    encoder_input,
    evaluate_completion,
    evaluate_completion_chunks,
    get_topic_word,
    infer_theta,
)
from etm.training.optimizers import OPTIMIZERS, LazyAdam, RowSparseAdam, clip_gradients, make_optimizer

logger = logging.getLogger("etm.training")  # the name logs print and users filter on (kept from before the move)

__all__ = [
    "TrainingConfig",
    "TrainingResult",
    "TrainingDivergedError",
    "OPTIMIZERS",
    "train",
    "infer_theta",
    "evaluate_completion",
    "make_optimizer",
    "RowSparseAdam",
    "LazyAdam",
    "get_topic_word",
    "evaluate_completion_chunks",
    "FIXED_ON_RESUME",
    "LR_SCHEDULES",
]

#: Training settings a resumed run must share with its checkpoint (the others may change on resume).
FIXED_ON_RESUME = ("batch_size", "optimizer", "lazy_updates", "bow_norm", "ema_decay", "seed")


def check_lazy_updates_world(world: int) -> None:
    """Refuse lazy updates in a data-parallel run: DistributedDataParallel reduces dense gradients."""
    if world > 1:
        raise ValueError("lazy_updates works in one process; DistributedDataParallel reduces dense gradients")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped without saving the bad state."""

    def __init__(self, message: str, *, epoch: int, batch: int, last_good_state: dict[str, torch.Tensor] | None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.last_good_state = last_good_state


@dataclass
class TrainingConfig:
    """Optimisation settings; defaults are the authors' ``main.py`` defaults.

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training documents.
    batch_size : int
        Documents per step (B); the authors' 1000 by default (``TopicModel``
        and ``etm train`` choose one for the corpus unless told).
    lr : float
        Learning rate.
    optimizer : str
        One of :data:`OPTIMIZERS`.
    weight_decay : float
        L2 penalty (the authors' ``wdecay``).
    clip : float
        Gradient-norm clipping threshold; 0 disables it.
    bow_norm : bool
        Feed the encoder count vectors divided by document length.
    anneal_lr : bool
        Divide the learning rate by ``lr_factor`` when the validation
        perplexity is worse than the best of all but the last ``nonmono``
        epochs (the authors' rule).
    nonmono, lr_factor
        Parameters of that rule.
    patience : int or None
        Stop after this many epochs without a better validation perplexity;
        None trains for all ``epochs``.
    eval_batch_size : int
        Documents per inference batch.
    eval_every : int
        Validate every this many epochs (validation drives the checkpoint).
    checkpoint_every : int
        Write the resumable checkpoint every this many epochs (with a
        checkpoint directory).
    kl_warmup : int
        Epochs over which the KL term's weight rises linearly from 0 to 1
        (0 = off, the authors' objective throughout). Early in training the
        encoder otherwise collapses onto the prior (KL near 0, theta
        uninformative) and perplexity stalls for the first epochs; warming
        the KL up lets it learn informative topic proportions first.
    kl_weight : float
        Multiplier of the KL term (1 = the ELBO, the authors' objective).
        Below 1 it weakens the pull of every document's topic proportions
        toward the dense N(0, I) prior, so documents concentrate on fewer
        topics (a beta-VAE-style trade of perplexity for topic quality; see
        benchmarks/lda_gap.py).
    lr_schedule : str
        "constant" (the authors') or "cosine": the learning rate decays
        per step from ``lr`` to 0 over ``epochs``, which removes the late
        noise of a constant rate and reaches a given perplexity in fewer
        epochs.
    ema_decay : float
        When above 0, keep an exponential moving average of the weights
        (updated after every step with this decay) and validate, select and
        return the averaged weights. Averaging the last few epochs' weights
        removes the noise of a constant learning rate without slowing
        learning down. 0 (the default) is the authors' behaviour.
    lazy_updates : bool
        Give the first encoder layer (V x H, most of the parameters at large
        vocabularies) row-sparse gradients and update it with a lazy Adam
        (:class:`RowSparseAdam`, the semantics of ``torch.optim.SparseAdam``):
        only the rows of words present in a batch, and their moments, change
        at a step. It pays when a batch holds a small share of a large
        vocabulary (on a 2-core CPU at 50k words, where a batch holds 40% of
        it, exact fused Adam is faster); not exact Adam (absent rows skip
        steps instead of coasting on their momentum, and decay only when updated).
        Needs ``optimizer="adam"`` and one process.
    encoder_token_drop : float
        Share of each training document's token occurrences hidden from the
        encoder at every step (binomial thinning of the counts); the decoder
        still reconstructs the whole document, and a document that would
        lose every token keeps them all. The encoder then learns to infer
        topic proportions from part of a document, which is what document
        completion asks of it (theta from the first half, likelihood of the
        second). The objective stays an evidence lower bound: the bound
        holds for any encoder input. On the authors' 20 Newsgroups 0.5 lowers
        test perplexity by ~6% and reaches theirs in a quarter of the epochs
        (docs/benchmarks/reproduce-20ng.md). 0 (the default) is the authors' training.
    seed : int
        Seed of parameter initialisation, shuffling, dropout and noise.
    """

    epochs: int = CONFIG_DEFAULTS["epochs"]
    batch_size: int = CONFIG_DEFAULTS["batch_size"]
    lr: float = CONFIG_DEFAULTS["lr"]
    optimizer: str = CONFIG_DEFAULTS["optimizer"]
    weight_decay: float = CONFIG_DEFAULTS["weight_decay"]
    clip: float = CONFIG_DEFAULTS["clip"]
    bow_norm: bool = CONFIG_DEFAULTS["bow_norm"]
    anneal_lr: bool = CONFIG_DEFAULTS["anneal_lr"]
    nonmono: int = CONFIG_DEFAULTS["nonmono"]
    lr_factor: float = CONFIG_DEFAULTS["lr_factor"]
    patience: int | None = CONFIG_DEFAULTS["patience"]
    eval_batch_size: int = CONFIG_DEFAULTS["eval_batch_size"]
    eval_every: int = CONFIG_DEFAULTS["eval_every"]
    checkpoint_every: int = CONFIG_DEFAULTS["checkpoint_every"]
    kl_warmup: int = CONFIG_DEFAULTS["kl_warmup"]
    kl_weight: float = CONFIG_DEFAULTS["kl_weight"]
    lr_schedule: str = CONFIG_DEFAULTS["lr_schedule"]
    ema_decay: float = CONFIG_DEFAULTS["ema_decay"]
    lazy_updates: bool = CONFIG_DEFAULTS["lazy_updates"]
    encoder_token_drop: float = CONFIG_DEFAULTS["encoder_token_drop"]
    seed: int = CONFIG_DEFAULTS["seed"]

    def validate(self) -> None:
        """Raise TypeError / ValueError naming the first invalid setting (the checks of :mod:`etm.options`)."""
        validate_config(self)
        if self.lazy_updates and self.optimizer != "adam":
            raise ValueError(f"lazy_updates uses a lazy Adam; it does not apply to optimizer={self.optimizer!r}")
        if self.lr_schedule != "constant" and self.anneal_lr:
            raise ValueError("anneal_lr and lr_schedule='cosine' both set the learning rate; choose one")


@dataclass
class TrainingResult:
    """What :func:`train` returns.

    ``history`` has one dict per epoch (loss, reconstruction, KL, learning
    rate, seconds, and validation perplexities when measured).
    """

    model: ETM
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_valid_perplexity: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0


def _thinned(batch: SparseBatch, drop: float) -> SparseBatch:
    """The batch with each token occurrence hidden with probability ``drop`` (binomial thinning).

    A document that would lose every token keeps all of them, so the encoder
    always sees some words.
    """
    values = batch.values if batch.values.device.type in ("cpu", "cuda") else batch.values.cpu()  # MPS: no binomial
    kept = batch.with_values(torch.binomial(values, torch.full_like(values, 1.0 - drop)).to(batch.values.device))
    emptied = (kept.row_sums() == 0)[batch.rows]
    return batch.with_values(torch.where(emptied, batch.values, kept.values))


class _TrainingStep(torch.nn.Module):
    """One forward pass of training as a module, so ``DistributedDataParallel`` can wrap it.

    The same computation as :meth:`ETM.forward`, also returning ``mu``,
    ``beta`` and the topic-word logits for regularizers (the seed prior reads
    ``beta``, embedding clustering the logits, so that they are computed once).
    """

    def __init__(self, model: ETM, topics: bool = True, logits: bool = False) -> None:
        super().__init__()
        self.model = model
        self.topics = topics  # whether a regularizer reads the step's topics (``beta``)
        self.logits = logits or model._loss_reads_logits()  # computed once, when the loss or a regularizer reads them

    def forward(
        self, batch: SparseBatch, encoder_input: SparseBatch | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        mu, logsigma, kld = self.model.encode(encoder_input)
        theta = F.softmax(self.model.reparameterize(mu, logsigma), dim=-1)
        logits = self.model._logits() if self.logits else None
        recon, beta = self.model._loss_terms(batch, theta, topics=self.topics, logits=logits)
        return recon.mean(), kld, mu, beta, logits


def _swap_in(params: list[torch.Tensor], ema: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    """Load the averaged weights into ``params``; returns the live weights to restore (or None)."""
    if ema is None:
        return None
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        torch._foreach_copy_(params, ema)
    return live


def _swap_out(params: list[torch.Tensor], live: list[torch.Tensor] | None) -> None:
    if live is not None:
        with torch.no_grad():
            torch._foreach_copy_(params, live)


# -- interruption ------------------------------------------------------------------------
class _InterruptGuard:
    """Defers Ctrl-C (SIGINT) to the end of the current step.

    The loop then stops at a step boundary, where its state (weights,
    optimizer, RNG streams, counters) is that of a completed step and can be
    checkpointed exactly. A second Ctrl-C stops at once, keeping the last
    checkpoint written. :func:`train` holds the guard from its first line, so
    a Ctrl-C during set-up or resume is kept as a request too: Python's own
    KeyboardInterrupt can be lost when it lands in a callback (e.g. during an
    import), a request cannot.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGINT)
            if current is signal.default_int_handler:  # not when SIGINT is ignored or handled by the caller
                self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("interrupted: stopping after the current step (press Ctrl-C again to stop at once)")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.requested and exc_type is None:  # came after the last step boundary: still a stop, never dropped
            logger.warning("interrupted as training ended: its last checkpoint is complete (resume to load it)")
            raise KeyboardInterrupt


# -- where training stands -----------------------------------------------------------------
@dataclass
class _Progress:
    """The JSON-able part of the training state: what a checkpoint stores besides tensors."""

    epochs_completed: int = 0
    steps_completed: int = 0  # steps done in the epoch after ``epochs_completed``
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("loss", "recon", "kl", "prior"), 0.0))
    n_seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_ppl: float = math.inf
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    resumes: list[dict[str, Any]] = field(default_factory=list)

    def start_epoch(self) -> None:
        self.steps_completed, self.n_seen = 0, 0
        self.sums = dict.fromkeys(self.sums, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "epochs_completed": self.epochs_completed,
            "steps_completed": self.steps_completed,
            "epoch_sums": self.sums,
            "epoch_documents": self.n_seen,
            "history": self.history,
            "best_valid_perplexity": None if math.isinf(self.best_ppl) else self.best_ppl,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "stopped_early": self.stopped_early,
            "resumes": self.resumes,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> _Progress:
        out = cls(
            epochs_completed=int(state["epochs_completed"]),
            steps_completed=int(state.get("steps_completed", 0)),
            n_seen=int(state.get("epoch_documents", 0)),
            history=list(state.get("history", [])),
            best_ppl=float(state.get("best_valid_perplexity") or math.inf),
            best_epoch=state.get("best_epoch"),
            epochs_without_improvement=int(state.get("epochs_without_improvement", 0)),
            stopped_early=bool(state.get("stopped_early", False)),
            resumes=list(state.get("resumes", [])),
        )
        out.sums.update({k: float(v) for k, v in (state.get("epoch_sums") or {}).items()})
        return out


def _check_resumable(where: Path, saved: dict[str, Any], saved_training: dict[str, Any], model: ETM,
                     config: TrainingConfig, metadata: dict[str, Any]) -> None:
    """Raise ValueError naming every setting that differs from the checkpoint's and may not change."""
    differences = []
    saved_model = saved.get("model") or {}
    for key, value in model_arguments(model).items():
        if key in saved_model and saved_model[key] != value:
            differences.append((key, saved_model[key], value))
    for key in FIXED_ON_RESUME:
        if key in saved_training and saved_training[key] != getattr(config, key):
            differences.append((key, saved_training[key], getattr(config, key)))
    names, saved_names = metadata.get("topic_names"), saved.get("topic_names")
    if names is not None and saved_names is not None and list(names) != list(saved_names):
        differences.append(("topic names (seeded topics)", saved_names, names))
    if differences:
        listed = "; ".join(f"{key} is {old!r} in the checkpoint but {new!r} now" for key, old, new in differences)
        raise ValueError(
            f"cannot resume from {where}: {listed}. These settings cannot change during training: resume with the "
            "checkpoint's values, or start a new model (another output directory, or --force to replace it)"
        )


def _saved_best_epoch(directory: Path) -> int | None:
    """The ``best_epoch`` recorded in a ``best/`` model directory (None when missing or incomplete)."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("best_epoch") if isinstance(config, dict) else None


class _Trainer:
    """The training loop, one method per concern: stepping, validation and selection, checkpoints, interruption.

    See :func:`train` for the arguments. State that a checkpoint must hold
    lives in ``progress`` (JSON) and in the tensors of :meth:`_tensors`.
    """

    def __init__(self, model: ETM, corpus: CorpusSource, config: TrainingConfig, *, device: torch.device | str = "cpu",
                 checkpoint_dir: str | os.PathLike[str] | None = None, verbose: bool = False,
                 extra_metadata: dict[str, Any] | None = None,
                 on_batch_end: Callable[[int, int, float], None] | None = None,
                 on_epoch_end: Callable[[int, ETM, dict[str, Any]], None] | None = None,
                 regularizer: Callable[..., torch.Tensor | None] | None = None,
                 guard: _InterruptGuard) -> None:
        config.validate()
        self.model, self.config, self.dev = model, config, torch.device(device)
        self.rank, self.world = rank_and_world()
        self.main = self.rank == 0
        self.vocabulary = corpus.vocabulary
        if len(self.vocabulary) != model.vocab_size:
            raise ValueError(f"corpus has {len(self.vocabulary)} words, model vocabulary has {model.vocab_size} words")
        self.generator = torch.Generator()
        self.generator.manual_seed(config.seed)
        self.epoch_rng = self.generator.get_state()  # shuffle state at the start of the epoch in progress
        self.source = batch_source(corpus, self.generator, config.seed)
        if self.source.n_docs == 0:
            raise ValueError("the training corpus has no documents")
        self.valid_chunks = completion_chunks(corpus, "valid")
        self.ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.meta = {"training": asdict(config), **(extra_metadata or {})}
        self.verbose, self.on_batch_end, self.on_epoch_end = verbose, on_batch_end, on_epoch_end
        self.regularizer = regularizer
        reset_state(regularizer)  # e.g. a warm start left by an earlier run with the same regularizer
        model.to(self.dev)
        self.runner = self._wrap(_TrainingStep(model, topics=reads_topics(regularizer),
                                               logits=reads_logits(regularizer)))
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = self._make_optimizer()
        self.ema = [p.detach().clone() for p in self.trainable] if config.ema_decay > 0 else None
        self.progress = _Progress()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_unsaved = False
        self.at_boundary = True  # the state is that of a completed step (safe to checkpoint)
        self.guard = guard  # held by train() around set-up and the loop
        self.seconds = 0.0
        self.paused = 0.0  # seconds spent in on_epoch_end, not counted as training time
        self.t_epoch = time.perf_counter()

    # -- set-up ------------------------------------------------------------------------
    def _wrap(self, runner: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return runner
        from torch.nn.parallel import DistributedDataParallel

        if self.config.batch_size % self.world:
            logger.warning("batch size %d is not a multiple of %d processes: each takes %d documents a step",
                           self.config.batch_size, self.world, self.config.batch_size // self.world)
        # buffers (fixed embeddings, background) never change and the decoder's running statistics are averaged at
        # the end of each epoch: no need to broadcast them every step (torch 2.13 renamed the switch; every rank
        # holds the same buffers when training starts, so its sync at set-up changes nothing);
        # gradients live in the all-reduce buckets instead of being copied there and back
        no_step_sync = ({"forward_sync_buffers": False}
                        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                        else {"broadcast_buffers": False})
        return DistributedDataParallel(runner, device_ids=[self.dev.index] if self.dev.type == "cuda" else None,
                                       gradient_as_bucket_view=True, **no_step_sync)

    def _make_optimizer(self) -> Any:
        config = self.config
        if not config.lazy_updates:
            return make_optimizer(config.optimizer, self.trainable, config.lr, config.weight_decay)
        check_lazy_updates_world(self.world)
        if self.dev.type == "mps":
            raise ValueError("lazy_updates needs sparse tensors, which MPS lacks; use cpu or cuda")
        first = self.model.q_theta[0]
        first.sparse_grad = True
        return LazyAdam([first.weight_t], [p for p in self.trainable if p is not first.weight_t], config.lr,
                        config.weight_decay)

    def _tidy_checkpoints(self) -> None:
        """Undo what a crash left in the checkpoint directory: a half-done swap, temporary files."""
        assert self.ckpt_root is not None
        for name in ("last", "best"):
            recover_directory(self.ckpt_root / name)
            remove_stray_temporaries(self.ckpt_root / name)

    def check_fresh_start(self) -> None:
        """Refuse to overwrite a checkpoint that a run without ``resume`` would replace."""
        if self.ckpt_root is None:
            return
        self._tidy_checkpoints()
        found = checkpoint_progress(self.ckpt_root / "last")
        if found is not None:
            raise ValueError(
                f"{self.ckpt_root / 'last'} already holds a training checkpoint (after epoch "
                f"{found['epochs_completed']}); pass resume=True (etm train --resume) to continue it, or another "
                "checkpoint directory to start afresh"
            )

    def resume(self) -> None:
        """Continue from ``checkpoint_dir/last``: weights, optimizer, RNG streams, counters, best weights."""
        if self.ckpt_root is None:
            raise ValueError("resume=True needs a checkpoint directory")
        last = self.ckpt_root / "last"
        self._tidy_checkpoints()
        if checkpoint_progress(last) is None:
            logger.info("no checkpoint in %s yet; starting from scratch", last)
            return
        saved, saved_vocab, saved_config, state, tensors = read_checkpoint(last, device=self.dev)
        if saved_vocab != list(self.vocabulary):
            raise ValueError(f"checkpoint {last} was trained on a different vocabulary than this corpus")
        saved_training = state.get("config") or {}
        _check_resumable(last, saved_config, saved_training, self.model, self.config, self.meta)
        self.model.load_state_dict(saved.state_dict())
        restore_optimizer(self.optimizer, state, tensors)
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        if "rng.shuffle" in tensors:
            self.generator.set_state(tensors["rng.shuffle"])
        for i, shadow in enumerate(self.ema or []):
            if f"ema.{i}" in tensors:
                shadow.copy_(tensors[f"ema.{i}"])
        load_state(self.regularizer, {k[len("regularizer."):]: v for k, v in tensors.items()
                                      if k.startswith("regularizer.")})
        self.progress = _Progress.from_json(state)
        best = {k[len("best."):]: v.to(self.dev) for k, v in tensors.items() if k.startswith("best.")}
        if best:
            self.best_state = best
        elif (self.ckpt_root / "best" / "model.safetensors").is_file():  # older checkpoints: no best.* tensors
            self.best_state = {k: v.clone() for k, v in load_model(self.ckpt_root / "best")[0].state_dict().items()}
        self._apply_changed_settings(saved_training)
        self.progress.stopped_early = bool(self.config.patience is not None and self.valid_chunks and
                                           self.progress.epochs_without_improvement >= self.config.patience)
        if self.best_state is not None and _saved_best_epoch(self.ckpt_root / "best") != self.progress.best_epoch:
            self.best_unsaved = True  # a crash came between writing best/ and last/: make them agree again
            self._write_best()
        logger.info("resuming from %s after %d epochs%s", last, self.progress.epochs_completed,
                    f" and {self.progress.steps_completed} steps" if self.progress.steps_completed else "")

    def _apply_changed_settings(self, saved: dict[str, Any]) -> None:
        """Settings that may change on resume take effect, and the change is recorded in the history."""
        changed = {k: [saved[k], v] for k, v in asdict(self.config).items() if k in saved and saved[k] != v}
        if not changed:
            return
        for group in self.optimizer.param_groups:
            if "lr" in changed:
                group["lr"] = self.config.lr
            if "weight_decay" in changed:
                group["weight_decay"] = self.config.weight_decay
        self.progress.resumes.append({"epochs_completed": self.progress.epochs_completed,
                                      "steps_completed": self.progress.steps_completed, "changed": changed})
        logger.info("resuming with changed settings: %s",
                    ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()))

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> TrainingResult:
        config, progress = self.config, self.progress
        if self.world == 1:  # Ctrl-C during set-up: nothing trained yet, the checkpoints stay as they were
            self._stop_if_interrupted()  # (several processes agree on it in the first step instead)
        logger.info("training ETM: %d documents, V=%d, K=%d, device=%s, %s%s", self.source.n_docs,
                    self.model.vocab_size, self.model.num_topics, self.dev,
                    ", ".join(f"{k}={v}" for k, v in asdict(config).items()),
                    f", {self.world} processes" if self.world > 1 else "")
        if not self.valid_chunks:
            logger.warning("no validation halves: the last epoch is kept and early stopping is off")
        from tqdm.auto import tqdm  # here, not at import: in a notebook without ipywidgets it warns on import

        self.bar = tqdm(total=config.epochs, initial=progress.epochs_completed,
                        disable=not (self.verbose and self.main), unit="epoch", desc="ETM")
        t_start = time.perf_counter()
        try:
            while progress.epochs_completed < config.epochs and not progress.stopped_early:
                epoch = progress.epochs_completed
                self._run_epoch(epoch)
                self._end_epoch(epoch)
                self._stop_if_interrupted()
        except KeyboardInterrupt:
            self._checkpoint_on_interrupt()
            raise
        finally:
            self.bar.close()
            self.model.q_theta[0].sparse_grad = False
        self.seconds = time.perf_counter() - t_start - self.paused
        return self._result()

    def _run_epoch(self, epoch: int) -> None:
        config, progress = self.config, self.progress
        self.model.train()
        self.t_epoch = time.perf_counter()
        if self.world > 1:  # each process its own noise and dropout, reproducible from any epoch on resume
            torch.manual_seed(int(np.random.SeedSequence([config.seed, self.rank, epoch]).generate_state(1)[0]))
        self.epoch_rng = self.generator.get_state()
        n_batches = self.source.n_steps(config.batch_size, self.world, epoch)
        batches = self.source.epoch(epoch, config.batch_size, self.rank, self.world, start=progress.steps_completed)
        for b, rows in enumerate(batches, start=progress.steps_completed):
            self.at_boundary = False
            value, parts, k = self._step(rows, epoch, b, n_batches)
            for key, part in zip(("loss", "recon", "kl", "prior"), (value, *parts)):
                progress.sums[key] += part * k
            progress.n_seen += k
            progress.steps_completed = b + 1
            self.at_boundary = True
            if self.on_batch_end is not None:
                self.on_batch_end(epoch + 1, b + 1, value)
            self._stop_if_interrupted()

    def _step(self, rows: Any, epoch: int, b: int, n_batches: int) -> tuple[float, tuple[float, float, float], int]:
        """One optimisation step; returns the loss, its (reconstruction, KL, prior) parts and the batch size."""
        config = self.config
        batch = SparseBatch.from_scipy(rows, device=self.dev)
        self.optimizer.zero_grad(set_to_none=True)
        done = (epoch * n_batches + b) / (config.epochs * n_batches)  # share of training done
        if config.lr_schedule == "cosine":
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * done))
        seen = _thinned(batch, config.encoder_token_drop) if config.encoder_token_drop else batch
        recon, kld, mu, beta, logits = self.runner(batch, encoder_input(seen, config.bow_norm, self.dev))
        kl_weight = config.kl_weight
        if config.kl_warmup:
            kl_weight *= min(1.0, (epoch * n_batches + b + 1) / (config.kl_warmup * n_batches))
        loss = recon + kl_weight * kld if kl_weight != 1.0 else recon + kld
        prior_value = 0.0
        if self.regularizer is not None:
            shared = {"logits": logits} if reads_logits(self.regularizer) else {}
            prior = self.regularizer(self.model, done, batch, mu, beta, **shared)
            if prior is not None:
                loss = loss + prior
                prior_value = float(prior.detach())
        value = float(loss.detach())
        self._check_finite(value, epoch, b, n_batches)
        loss.backward()
        if config.clip > 0:
            if config.lazy_updates:
                clip_gradients(self.trainable, config.clip)
            else:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
        self.optimizer.step()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, self.trainable, 1.0 - config.ema_decay)
        return value, (float(recon.detach()), float(kld.detach()), prior_value), batch.n_docs

    def _check_finite(self, value: float, epoch: int, b: int, n_batches: int) -> None:
        """Stop on a NaN or infinite loss; in a data-parallel run, also agree on a pending Ctrl-C."""
        total = value
        if self.world > 1:
            total, interrupted = all_sum([value, float(self.guard.requested)])
            self.guard.requested = interrupted > 0
        if math.isfinite(total):
            return
        last = self.ckpt_root / "last" if self.ckpt_root is not None else None
        kept = (f"the last good checkpoint is kept in {last}" if last is not None
                and checkpoint_progress(last) is not None else "no checkpoint was written yet")
        raise TrainingDivergedError(
            f"training diverged: the loss became {value} at epoch {epoch + 1}, batch {b + 1} of {n_batches}; "
            f"{kept}. Try a lower learning rate (--lr) or gradient clipping (--clip).",
            epoch=epoch + 1, batch=b + 1, last_good_state=self.best_state)

    def _stop_if_interrupted(self) -> None:
        if self.guard.requested:
            raise KeyboardInterrupt

    def _end_epoch(self, epoch: int) -> None:
        """Record the epoch, validate and select, then checkpoint and decide on early stopping."""
        config, progress = self.config, self.progress
        record = self._epoch_record(epoch)
        average_running_statistics(self.model)  # ranks agree before validating and checkpointing
        improved = False
        self.at_boundary = False
        live = _swap_in(self.trainable, self.ema)
        try:
            if self.valid_chunks and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
                improved = self._validate_and_select(epoch, record)
            record["seconds"] = time.perf_counter() - self.t_epoch
            progress.history.append(record)
            progress.epochs_completed = epoch + 1
            progress.start_epoch()
            self.at_boundary = True
            if self.on_epoch_end is not None and self.main:
                paused = time.perf_counter()
                self.on_epoch_end(epoch + 1, self.model, record)
                self.paused += time.perf_counter() - paused
        finally:
            _swap_out(self.trainable, live)
        self.best_unsaved = self.best_unsaved or improved
        progress.stopped_early = bool(config.patience is not None and self.valid_chunks
                                      and progress.epochs_without_improvement >= config.patience)
        if self.ckpt_root is not None and ((epoch + 1) % config.checkpoint_every == 0
                                           or epoch + 1 == config.epochs or progress.stopped_early):
            self._write_checkpoints()
        self.bar.update(1)
        self.bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "kl", "valid_perplexity") if k in record})
        logger.debug("epoch %d: %s", epoch + 1, record)
        if progress.stopped_early:
            logger.info("early stopping after epoch %d: no better validation perplexity for %d epochs",
                        epoch + 1, config.patience)

    def _epoch_record(self, epoch: int) -> dict[str, Any]:
        sums, n_seen = dict(self.progress.sums), self.progress.n_seen
        if self.world > 1:
            totals = all_sum([sums["loss"], sums["recon"], sums["kl"], sums["prior"], n_seen])
            sums = dict(zip(("loss", "recon", "kl", "prior"), totals[:4]))
            n_seen = int(totals[4])
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / n_seen,
            "reconstruction": sums["recon"] / n_seen,
            "kl": sums["kl"] / n_seen,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if self.regularizer is not None:
            record["prior"] = sums["prior"] / n_seen
        return record

    def _validate_and_select(self, epoch: int, record: dict[str, Any]) -> bool:
        """Validation perplexity, best-epoch selection and the authors' annealing rule; True if improved."""
        config, progress = self.config, self.progress
        if self.main:
            scores = evaluate_completion_chunks(self.model, self.valid_chunks, batch_size=config.eval_batch_size,
                                                bow_norm=config.bow_norm, device=self.dev)
            ppl, ppl_token = scores.perplexity_per_document, scores.perplexity_per_token
        else:
            ppl = ppl_token = 0.0
        ppl, ppl_token = broadcast_float(ppl), broadcast_float(ppl_token)  # one decision for all ranks
        if not math.isfinite(ppl):
            raise TrainingDivergedError(
                f"training diverged: validation perplexity became {ppl} after epoch {epoch + 1}",
                epoch=epoch + 1, batch=self.source.n_steps(config.batch_size, self.world, epoch),
                last_good_state=self.best_state)
        record["valid_perplexity"] = ppl
        record["valid_perplexity_per_token"] = ppl_token
        improved = ppl < progress.best_ppl
        if improved:
            progress.best_ppl, progress.best_epoch = ppl, epoch + 1
            if self.main:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            progress.epochs_without_improvement = 0
        else:
            progress.epochs_without_improvement += 1
        valid_ppls = [h["valid_perplexity"] for h in progress.history if "valid_perplexity" in h] + [ppl]
        lr = self.optimizer.param_groups[0]["lr"]
        if (config.anneal_lr and len(valid_ppls) > config.nonmono
                and ppl > min(valid_ppls[: -config.nonmono]) and lr > 1e-5):
            for group in self.optimizer.param_groups:
                group["lr"] /= config.lr_factor
            logger.info("epoch %d: learning rate annealed to %g", epoch + 1, self.optimizer.param_groups[0]["lr"])
        return improved

    # -- checkpoints -----------------------------------------------------------------------
    def _write_checkpoints(self) -> None:
        """``best/`` (when a better epoch came since it was written), then the resumable ``last/``."""
        if self.ckpt_root is None or not self.main:
            return
        self._write_best()
        write_checkpoint(self.ckpt_root / "last", self.model, self.vocabulary, self.optimizer,
                         {**self.progress.to_json(), "config": asdict(self.config)}, self._tensors(),
                         extra=self.meta)

    def _write_best(self) -> None:
        if self.ckpt_root is not None and self.main and self.best_unsaved and self.best_state is not None:
            current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.best_state)
            save_model(self.ckpt_root / "best", self.model, self.vocabulary,
                       extra={**self.meta, "best_epoch": self.progress.best_epoch,
                              "valid_perplexity": self.progress.best_ppl})
            self.model.load_state_dict(current)
            self.best_unsaved = False

    def _tensors(self) -> dict[str, torch.Tensor]:
        mid_epoch = self.progress.steps_completed > 0
        tensors = {"rng.torch": torch.get_rng_state(),
                   "rng.shuffle": self.epoch_rng if mid_epoch else self.generator.get_state()}
        tensors.update({f"ema.{i}": shadow for i, shadow in enumerate(self.ema or [])})
        tensors.update({f"best.{k}": v for k, v in (self.best_state or {}).items()})
        tensors.update({f"regularizer.{k}": v for k, v in state_of(self.regularizer).items()})
        return tensors

    def _checkpoint_on_interrupt(self) -> None:
        """After Ctrl-C: checkpoint the last completed step, when the state is that of one."""
        if self.ckpt_root is None:
            return
        where = self.ckpt_root / "last"
        if not self.at_boundary or (self.world > 1 and self.progress.steps_completed):
            logger.warning("interrupted inside a step: the last checkpoint written is kept in %s", where)
            return
        self._write_checkpoints()
        logger.warning("interrupted: resumable checkpoint after epoch %d%s written to %s (resume with --resume)",
                       self.progress.epochs_completed,
                       f", step {self.progress.steps_completed}" if self.progress.steps_completed else "", where)

    def _result(self) -> TrainingResult:
        progress, has_valid = self.progress, bool(self.valid_chunks)
        if has_valid and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.ema is not None and self.world == 1:
            _swap_in(self.trainable, self.ema)
        if self.world > 1:
            torch.distributed.barrier()
        self.model.eval()
        return TrainingResult(
            model=self.model,
            history=progress.history,
            best_epoch=progress.best_epoch if has_valid else len(progress.history),
            best_valid_perplexity=None if math.isinf(progress.best_ppl) else progress.best_ppl,
            stopped_early=progress.stopped_early,
            seconds=self.seconds,
        )


def train(
    model: ETM,
    corpus: CorpusSource,
    config: TrainingConfig,
    *,
    device: torch.device | str = "cpu",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    verbose: bool = False,
    extra_metadata: dict[str, Any] | None = None,
    on_batch_end: Callable[[int, int, float], None] | None = None,
    on_epoch_end: Callable[[int, ETM, dict[str, Any]], None] | None = None,
    regularizer: Callable[..., torch.Tensor | None] | None = None,
) -> TrainingResult:
    """Fit ``model`` on the corpus's training documents, selecting the best epoch on its validation halves.

    Runs inside ``torch.random.fork_rng`` seeded with ``config.seed``, so
    dropout and the reparameterisation noise are reproducible and the
    caller's global random state is left untouched.

    Parameters
    ----------
    model : ETM
        Freshly built module; trained in place (its weights are replaced by
        the checkpoint's when resuming).
    corpus : CorpusSource (a PreparedCorpus in memory or a ShardedCorpus on disk)
        Its vocabulary must have ``model.vocab_size`` words.
    config : TrainingConfig
    device : torch.device or str
        Where to train; batches move there inside the loop.
    checkpoint_dir : path, optional
        Where the resumable checkpoint (``last/``) and the best model
        (``best/``) are written, every ``config.checkpoint_every`` epochs,
        at the end, on early stopping and on Ctrl-C. Each is replaced as a
        unit, so a crash at any instant leaves the previous or the new one.
        Without ``resume``, a directory that already holds a checkpoint is
        refused rather than overwritten.
    resume : bool
        Continue from ``checkpoint_dir/last`` when it exists, exactly where
        it stopped (mid-epoch after Ctrl-C). Settings that shape the model or
        the run (architecture, vocabulary, batch size, optimizer, seed; see
        ``FIXED_ON_RESUME``) must match the checkpoint's; the others (lr,
        epochs, patience, ...) may change, and the change is recorded.
    verbose : bool
        Show a tqdm progress bar with loss, KL and validation perplexity.
    extra_metadata : dict, optional
        JSON-able settings stored in every written config.
    on_batch_end : callable, optional
        ``f(epoch, batch, loss)`` after each step (tests use it to interrupt).
    on_epoch_end : callable, optional
        ``f(epoch, model, record)`` after each epoch's validation; it may add
        keys to ``record`` (the history entry), e.g. a test-set metric, and
        its time is not counted in the training time.
    regularizer : callable, optional
        ``f(model, progress, batch, mu, beta) -> scalar tensor or None`` added
        to every batch's loss, ``progress`` in [0, 1) being the share of
        training done, ``batch`` the :class:`SparseBatch`, ``mu`` its posterior
        means and ``beta`` the step's topics (computed once, shared);
        e.g. the seeded-topic prior of :class:`etm.seeding.SeedPrior`. A
        regularizer with ``reads_logits = True`` also gets the step's (V, K)
        topic-word logits as ``logits=`` (see :mod:`etm.regularizers`). Its
        epoch mean is recorded as ``prior`` in the history.

    Returns
    -------
    TrainingResult
        The model holds the weights of the best validation epoch (or the
        last epoch when there is no validation split).

    Raises
    ------
    TrainingDivergedError
        The loss became NaN or infinite; the last good checkpoint is kept.
    KeyboardInterrupt
        Re-raised after Ctrl-C, once the current step is done and (with a
        checkpoint directory) its state is checkpointed.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if device.type != "cpu" else "cuda"):
        torch.manual_seed(config.seed)
        reuse_freed_memory()
        with _InterruptGuard() as guard:
            trainer = _Trainer(model, corpus, config, device=device, checkpoint_dir=checkpoint_dir, verbose=verbose,
                               extra_metadata=extra_metadata, on_batch_end=on_batch_end, on_epoch_end=on_epoch_end,
                               regularizer=regularizer, guard=guard)
            if resume:
                trainer.resume()
            else:
                trainer.check_fresh_start()
            return trainer.run()
