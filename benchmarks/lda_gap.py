"""What would it take for ETM's topic quality to pass LDA's on the authors' 20 Newsgroups?

Why this script exists: Dieng et al. (2020) report that the Embedded Topic Model beats LDA on topic
quality (NPMI coherence x diversity). On the authors' own preprocessed 20 Newsgroups, etm at the authors'
settings (K=50, H=800, E=300, Adam lr 0.005, batch 1000) reaches quality ~0.08 while LDA reaches ~0.15.
This script produces the evidence about that gap, all scored with the same functions of ``etm.metrics``
(coherence: NPMI of the top 10 words over training-document co-occurrence; diversity: unique share of the
top 25 words; document-completion perplexity per document on the authors' test halves):

1. LDA baselines on the same bag of words: tomotopy (collapsed Gibbs) and gensim (online variational Bayes).
2. Diagnosis of the baseline ETM against both LDAs: frequent corpus words repeated across topics,
   near-duplicate topics, per-topic coherence quantiles and how many topics a test document uses.
3. Remedies trained side by side (same seed, same epochs, final epoch, no validation selection):
   a background log-frequency bias in the decoder (fixed, as in SAGE/Scholar, or learned), KL warm-up,
   longer training, encoder dropout, smaller batches, a down-weighted KL term and fixed document
   co-occurrence (PPMI-SVD) word embeddings. Each is scored with top words ranked by ``beta`` and by lift
   (``log beta_kw - log p(w)``, which for the background models is the topic's own deviation, the way
   SAGE/Scholar report topics); LDA gets both rankings too, so every comparison is like for like.

The remedy models are subclasses of :class:`etm.ETM` defined here; the library is untouched.

Usage::

    python benchmarks/lda_gap.py [--data ../shared/data] [--epochs 60] [--threads 1]

About 23 minutes at one thread on a 2-core x86 machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from etm import ETM
from etm.corpus import PreparedCorpus
from etm.model import SparseBatch
from etm.readers import read_authors_format
from etm.training import TrainingConfig, get_topic_word, infer_theta, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import SEED, Evaluator, Fitted, default_data, fit_gensim, fit_tomotopy  # noqa: E402

N_TOPICS = 50


# --------------------------------------------------------------------------- ETM variants


class RemedyETM(ETM):
    """ETM with two optional changes, both off by default (then it is exactly :class:`etm.ETM`).

    ``background``: the decoder's logits become ``rho @ alphas^T + b`` with ``b_w`` the log of the
    corpus unigram frequency (SAGE/Scholar), fixed (a buffer) or learned (a parameter initialised there),
    so a topic's own logits only model its deviation from the corpus and it need not spend probability
    mass on frequent words. ``kl_scale``: the KL term of the ELBO is multiplied by this factor
    (beta-VAE style); below 1 the encoder may move further from the dense N(0, I) prior, so documents
    use fewer topics.
    """

    def __init__(
        self,
        *args: Any,
        background: np.ndarray | None = None,
        learn_background: bool = False,
        kl_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kl_scale = float(kl_scale)
        self.background: torch.Tensor | None
        if background is None:
            self.background = None
        else:
            b = torch.as_tensor(np.asarray(background), dtype=torch.float32).clone()
            if learn_background:
                self.background = nn.Parameter(b)
            else:
                self.register_buffer("background", b)

    def get_beta(self) -> torch.Tensor:
        logit = self.alphas(self.rho.weight)  # (V, K)
        if self.background is not None:
            logit = logit + self.background.unsqueeze(1)
        return F.softmax(logit, dim=0).transpose(1, 0)

    def encode(self, bows: torch.Tensor | SparseBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logsigma, kl = super().encode(bows)
        return mu, logsigma, kl * self.kl_scale if self.kl_scale != 1.0 else kl


def ppmi_embeddings(counts: sp.spmatrix, dim: int = 300) -> np.ndarray:
    """Unit-norm word vectors from the SVD of document-level positive PMI (Levy & Goldberg, 2014)."""
    present = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    present.data[:] = 1.0
    co = (present.T @ present).toarray()
    df = np.diag(co).copy()
    with np.errstate(divide="ignore"):
        pmi = np.log(co * present.shape[0] / np.outer(df, df))
    pmi[~np.isfinite(pmi)] = 0.0
    ppmi = np.maximum(pmi, 0.0)
    np.fill_diagonal(ppmi, 0.0)
    u, s, _ = np.linalg.svd(ppmi)
    emb = u[:, :dim] * np.sqrt(s[:dim])
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Variant:
    """One ETM configuration: model options and training overrides."""

    name: str
    part: str  # which remedy of the brief it answers
    description: str
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    epochs_factor: int = 1
    embeddings: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "-", "authors' settings (relu, enc_drop 0, constant lr)", epochs_factor=2),
    Variant("bg-fixed", "a", "decoder bias b_w = log p(w), fixed", model={"background": "log_frequency"}),
    Variant("bg-learned", "b", "decoder bias b_w learned from log p(w)",
            model={"background": "log_frequency", "learn_background": True}),
    Variant("kl-warmup30", "c", "KL weight 0 -> 1 over 30 epochs", training={"kl_warmup": 30}),
    Variant("enc-drop0.5", "d", "encoder dropout 0.5 (etm's default)", model={"enc_drop": 0.5}),
    Variant("batch200", "d", "batch 200: 5x more Adam steps per epoch", training={"batch_size": 200}),
    Variant("kl-x0.03", "d", "KL term x 0.03 (sharper theta)", model={"kl_scale": 0.03}),
    Variant("bg-fixed+kl-x0.1", "d", "bg-fixed and KL term x 0.1",
            model={"background": "log_frequency", "kl_scale": 0.1}),
    Variant("bg-fixed+kl-x0.03", "d", "bg-fixed and KL term x 0.03",
            model={"background": "log_frequency", "kl_scale": 0.03}, epochs_factor=2),
    Variant("ppmi-emb", "d", "fixed word embeddings: SVD of training-doc PPMI", embeddings=True),
)


def run_variant(
    variant: Variant,
    corpus: PreparedCorpus,
    ev: Evaluator,
    epochs: int,
    embeddings: np.ndarray | None,
    curve_every: int,
    log: Callable[[str], None],
) -> list[Fitted]:
    """Train one variant; a variant with ``epochs_factor`` 2 also yields its state at ``epochs`` (same run)."""
    vocab_size = len(corpus.vocabulary)
    options = dict(variant.model)
    if options.get("background") == "log_frequency":
        options["background"] = ev.log_frequency
    kwargs: dict[str, Any] = {"theta_act": "relu", "enc_drop": 0.0, **options}
    if variant.embeddings:
        assert embeddings is not None
        kwargs.update(embeddings=torch.as_tensor(embeddings, dtype=torch.float32), train_embeddings=False)
    torch.manual_seed(SEED)
    model = RemedyETM(N_TOPICS, vocab_size, 800, 300, **kwargs)
    total = epochs * variant.epochs_factor
    settings = {"epochs": total, "batch_size": 1000, "lr": 0.005, "weight_decay": 1.2e-6, "seed": SEED,
                "kl_warmup": 0, "lr_schedule": "constant", **variant.training}
    config = TrainingConfig(**settings)
    curve: list[dict[str, float]] = []
    snapshots: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    t0 = time.perf_counter()
    paused = 0.0

    def on_epoch_end(epoch: int, m: ETM, record: dict[str, Any]) -> None:
        nonlocal paused
        if epoch % curve_every and epoch != total and epoch != epochs:
            return
        start = time.perf_counter()
        beta = get_topic_word(m).astype(np.float64)
        theta = infer_theta(m, ev.h1)  # restores training mode
        ppl = ev.perplexity(theta, beta)
        by_beta, by_lift = ev.topics(beta, ppl), ev.topics(ev.lift(beta), ppl)
        curve.append({"epoch": epoch, "quality": by_beta.quality, "quality_lift": by_lift.quality,
                      "perplexity": ppl})
        if epoch in (epochs, total):
            snapshots[epoch] = (beta, theta, start - t0 - paused)
        paused += time.perf_counter() - start

    # Train on the final epoch: the authors' 100-document validation split is too small to select on.
    no_valid = dataclasses.replace(corpus, valid=None, valid_halves=None)
    train(model, no_valid, config, on_epoch_end=on_epoch_end)
    out = []
    for ep in sorted(snapshots):
        beta, theta, seconds = snapshots[ep]
        name = variant.name if ep == epochs else f"{variant.name} x{variant.epochs_factor} epochs"
        fitted = ev.fitted(name, beta, theta, seconds, curve=[c for c in curve if c["epoch"] <= ep],
                           note=variant.description if ep == epochs else f"longer training ({ep} epochs)")
        out.append(fitted)
        log(f"  {name:<22} epochs {ep:>4}  {seconds:7.1f} s  quality {fitted.by_beta.quality:.4f} "
            f"(lift {fitted.by_lift.quality:.4f})  ppl {fitted.by_beta.perplexity:.0f}")
    return out


# --------------------------------------------------------------------------- diagnosis helpers


def effective_topics(theta: np.ndarray) -> float:
    """Mean over documents of exp(entropy of theta_d): how many topics a document spreads over."""
    p = np.asarray(theta, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1)
    return float(np.exp(entropy).mean())


def near_duplicate_pairs(top10: np.ndarray, min_overlap: int = 5) -> int:
    sets = [set(row.tolist()) for row in top10]
    return sum(len(sets[i] & sets[j]) >= min_overlap for i in range(len(sets)) for j in range(i + 1, len(sets)))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, NaN when either side is constant."""
    if np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def frequent_share(top25: np.ndarray, frequent: np.ndarray) -> np.ndarray:
    """Per topic, the share of its top-25 words that are among ``frequent``."""
    return np.isin(top25, frequent).mean(axis=1)


# --------------------------------------------------------------------------- tables


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(x: Any) -> str:
        if isinstance(x, float):
            if math.isnan(x):
                return "-"
            return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def scores_row(f: Fitted) -> list[Any]:
    b, lft = f.by_beta, f.by_lift
    return [f.name, b.coherence, b.diversity, b.quality, lft.coherence, lft.diversity, lft.quality,
            b.perplexity, effective_topics(f.theta_h1), f.seconds]


SCORE_HEADER = ["model", "coh (beta)", "div (beta)", "quality (beta)", "coh (lift)", "div (lift)",
                "quality (lift)", "test ppl", "topics/doc", "train s"]


def part1_table(ldas: Sequence[Fitted]) -> str:
    header = ["model", "fit", "coherence", "diversity", "quality", "test ppl", "topics/doc", "train s"]
    rows = [[f.name, f.note, f.by_beta.coherence, f.by_beta.diversity, f.by_beta.quality, f.by_beta.perplexity,
             effective_topics(f.theta_h1), f.seconds] for f in ldas]
    return markdown(header, rows)


def part2_tables(models: Sequence[Fitted], ev: Evaluator, vocabulary: Sequence[str]) -> str:
    out = []
    header = ["corpus word (rank)", *[f"{m.name}: topics with it in top 25" for m in models]]
    rows = []
    for rank, w in enumerate(ev.by_frequency[:10], 1):
        rows.append([f"{vocabulary[w]} ({rank})", *[int((m.by_beta.top25 == w).any(axis=1).sum()) for m in models]])
    out.append(markdown(header, rows))

    frequent = ev.by_frequency[:100]
    header = ["measure", *[m.name for m in models]]
    shares = [frequent_share(m.by_beta.top25, frequent) for m in models]
    quant = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
    rows = [
        ["mean share of top-25 words among the 100 most frequent", *[s.mean() for s in shares]],
        ["topics with >= half their top 25 among the 100 most frequent", *[int((s >= 0.5).sum()) for s in shares]],
        ["near-duplicate topic pairs (top-10 overlap >= 5)", *[near_duplicate_pairs(m.by_beta.top10) for m in models]],
        ["distinct words among all top-25 lists", *[int(np.unique(m.by_beta.top25).size) for m in models]],
        *[[f"per-topic NPMI, quantile {q:g}", *[float(np.quantile(m.by_beta.per_topic_coherence, q)) for m in models]]
          for q in quant],
        ["topics with NPMI < 0.1", *[int((m.by_beta.per_topic_coherence < 0.1).sum()) for m in models]],
        ["test docs: effective topics per doc, exp(H(theta))", *[effective_topics(m.theta_h1) for m in models]],
        ["test docs: mean largest topic share", *[float(m.theta_h1.max(axis=1).mean()) for m in models]],
        ["corr(topic NPMI, frequent share)",
         *[correlation(m.by_beta.per_topic_coherence, s) for m, s in zip(models, shares)]],
    ]
    out.append(markdown(header, rows))

    etm = models[0]
    dup = np.argsort(-frequent_share(etm.by_beta.top25, frequent), kind="stable")[:5]
    rows = [[int(k), f"{frequent_share(etm.by_beta.top25[k:k + 1], frequent)[0]:.2f}",
             f"{etm.by_beta.per_topic_coherence[k]:.3f}", " ".join(vocabulary[w] for w in etm.by_beta.top10[k])]
            for k in dup]
    out.append(f"{etm.name}: its 5 topics with the most frequent-word top-25 lists\n\n"
               + markdown(["topic", "frequent share", "NPMI", "top 10 words"], rows))
    return "\n\n".join(out)


def part3_tables(etms: Sequence[Fitted], ldas: Sequence[Fitted], variants: Sequence[Variant]) -> str:
    part = {v.name: v.part for v in variants}
    part.update({f"{v.name} x{v.epochs_factor} epochs": "c" if v.name == "baseline" else f"{v.part}, longer"
                 for v in variants if v.epochs_factor > 1})
    base = next((f for f in etms if f.name == "baseline"), etms[0])
    header = ["remedy", "variant", "what", "quality (beta)", "quality (lift)", "coh (beta)", "div (beta)",
              "test ppl", "ppl vs baseline", "topics/doc",
              *[f"passes {lda.name} (beta / lift)" for lda in ldas], "train s"]
    rows = []
    for f in [*ldas, *etms]:
        is_lda = f in ldas
        passes = ["-" if is_lda else
                  f"{'yes' if f.by_beta.quality > lda.by_beta.quality else 'no'} / "
                  f"{'yes' if f.by_lift.quality > lda.by_lift.quality else 'no'}" for lda in ldas]
        delta = "-" if is_lda else f"{100 * (f.by_beta.perplexity / base.by_beta.perplexity - 1):+.1f}%"
        rows.append(["LDA" if is_lda else part.get(f.name, "?"), f.name, f.note, f.by_beta.quality,
                     f.by_lift.quality, f.by_beta.coherence, f.by_beta.diversity, f.by_beta.perplexity, delta,
                     effective_topics(f.theta_h1), *passes, f.seconds])
    main = markdown(header, rows)
    detail = markdown(SCORE_HEADER, [scores_row(f) for f in [*ldas, *etms]])
    epochs = sorted({int(c["epoch"]) for f in etms for c in f.curve})
    curve_rows = []
    for f in etms:
        if " x" in f.name:
            continue
        longer = next((g for g in etms if g.name.startswith(f.name + " x")), f)
        points = {int(c["epoch"]): c for c in longer.curve}
        curve_rows.append([f.name, *[f"{points[e]['quality']:.3f} / {points[e]['quality_lift']:.3f} / "
                                     f"{points[e]['perplexity']:.0f}" if e in points else "" for e in epochs]])
    curve = markdown(["variant", *[f"epoch {e}" for e in epochs]], curve_rows)
    return (main + "\n\nAll scores (coherence and diversity under both rankings):\n\n" + detail
            + "\n\nTraining curves, quality (beta) / quality (lift) / test ppl:\n\n" + curve)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data(), help="folder holding 20ng-etm/")
    ap.add_argument("--epochs", type=int, default=60,
                    help="ETM epochs per variant (the baseline and the best combination also run 2x)")
    ap.add_argument("--threads", type=int, default=1, help="torch / tomotopy threads (gensim runs in-process)")
    ap.add_argument("--lda-iterations", type=int, default=1000, help="tomotopy Gibbs iterations")
    ap.add_argument("--gensim-passes", type=int, default=10)
    ap.add_argument("--curve-every", type=int, default=10, help="epochs between training-curve points")
    ap.add_argument("--variants", nargs="*", default=None, choices=[v.name for v in VARIANTS],
                    help="ETM variants to train (default: all; the baseline is always trained)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("etm").setLevel(logging.ERROR)  # silence "no validation halves": that is intended here
    t_start = time.perf_counter()
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))

    def log(message: str) -> None:
        print(message, flush=True)

    log(f"$ {command}")
    corpus = read_authors_format(args.data / "20ng-etm")
    ev = Evaluator(corpus)
    vocabulary = list(corpus.vocabulary)
    log(f"data: {corpus.train.counts.shape[0]} training docs, V={len(vocabulary)}, "
        f"{corpus.test_halves[0].shape[0]} test docs; torch {torch.__version__}, {args.threads} thread(s)")

    log("part 1: LDA baselines")
    ldas = [fit_tomotopy(corpus, ev, args.lda_iterations, args.threads, N_TOPICS)]
    log(f"  {ldas[-1].name}: {ldas[-1].seconds:.0f} s, quality {ldas[-1].by_beta.quality:.4f}")
    ldas.append(fit_gensim(corpus, ev, args.gensim_passes, N_TOPICS))
    log(f"  {ldas[-1].name}: {ldas[-1].seconds:.0f} s, quality {ldas[-1].by_beta.quality:.4f}")

    log(f"part 3: ETM variants, {args.epochs} epochs each")
    chosen = [v for v in VARIANTS if v.name == "baseline" or args.variants is None or v.name in args.variants]
    embeddings = ppmi_embeddings(corpus.train.counts) if any(v.embeddings for v in chosen) else None
    etms: list[Fitted] = []
    for variant in chosen:
        etms.extend(run_variant(variant, corpus, ev, args.epochs, embeddings, args.curve_every, log))

    report = [
        f"$ {command}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} "
        f"thread(s); data {args.data / '20ng-etm'}; ETM K={N_TOPICS}, H=800, E=300, Adam lr 0.005, "
        f"weight decay 1.2e-6, seed {SEED}, {args.epochs} epochs (final epoch, no validation selection)",
        "Coherence: mean NPMI of the top 10 words over training-document co-occurrence. Diversity: unique share "
        "of the top 25 words. Quality = coherence x diversity. Test ppl: document completion on the authors' "
        "test halves, exp(mean_d(-loglik_d / n_d)). topics/doc: mean exp(entropy(theta)) on the test first "
        "halves. 'beta' ranks a topic's words by probability; 'lift' by log beta_kw - log p(w).",
        "## Part 1: LDA on the same bag of words, scored with etm.metrics",
        part1_table(ldas),
        "## Part 2: why the baseline ETM trails (top words ranked by beta)",
        part2_tables([etms[0], *ldas], ev, vocabulary),
        "## Part 3: remedies, side by side",
        part3_tables(etms, ldas, chosen),
        f"total runtime: {time.perf_counter() - t_start:.0f} s",
    ]
    print("\n\n" + "\n\n".join(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
