"""One etm recipe on one corpus: topic quality, perplexity and time, for choosing the default recipe.

Why: the topic-quality study (issue 16) compares many settings of the one model; this script trains
``TopicModel`` with its defaults plus ``--set name=value`` overrides on the authors' 20 Newsgroups or
OCTIS M10 and scores it with the benchmark's one metric code (``_baselines.Evaluator``: NPMI coherence of
the top 10 words over training documents, diversity of the top 25, quality = coherence x diversity,
document-completion perplexity on the test halves). It also prints the validation perplexity, which (with
training-document coherence) is what a recipe may be chosen on; test numbers are reported, never tuned on.

    python benchmarks/recipe.py --corpus 20ng --k 50 --set kl_weight=0.3 --seeds 2019,1,2
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from etm.embeddings import clear_corpus_skipgram_cache
from etm.estimator import TopicModel
from etm.metrics import perplexity_per_document
from etm.readers import read_authors_format, read_octis
from etm.training.inference import decoder_loglik

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import Evaluator, default_data  # noqa: E402

CORPORA = {"20ng": ("20ng-etm", read_authors_format), "m10": ("octis-m10", read_octis)}


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def epoch_curve(ev: Evaluator) -> Any:
    """``on_epoch_end``: print each epoch's validation perplexity and training-document quality (``--curve``)."""
    from etm.training import get_topic_word

    def hook(epoch: int, model: Any, record: dict[str, Any]) -> None:
        s = ev.topics(np.asarray(get_topic_word(model), dtype=np.float64), float("nan"))
        record.update(train_coherence=s.coherence, diversity=s.diversity)
        print(f"  epoch {epoch}: valid ppl {record.get('valid_perplexity', float('nan')):.1f} coherence "
              f"{s.coherence:.4f} diversity {s.diversity:.3f} quality {s.quality:.4f}", flush=True)

    return hook


def score(model: TopicModel, ev: Evaluator, theta: np.ndarray, seconds: float) -> Any:
    """Topic and completion scores of a fitted ``TopicModel``; ``theta`` inferred from the test first halves."""
    beta = np.asarray(model.topic_word_, dtype=np.float64)
    if model.model_.decoder == "mixture":
        return ev.fitted("etm", beta, theta, seconds).by_beta
    # the product of experts is scored by its own predictive distribution, not theta @ beta
    return ev.topics(beta, perplexity_per_document(decoder_loglik(model.model_, theta, ev.h2), ev.n_h2))


def run(corpus_key: str, k: int, seed: int, params: dict[str, Any], data: Path, threads: int,
        curve: bool = False) -> dict[str, Any]:
    folder, reader = CORPORA[corpus_key]
    corpus = reader(data / folder)
    ev = Evaluator(corpus)
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        model = TopicModel(n_topics=k, random_state=seed, device="cpu", **params)
        clear_corpus_skipgram_cache()  # every run pays for its own corpus vectors (short documents)
        t0 = time.perf_counter()
        model.fit(corpus, on_epoch_end=epoch_curve(ev) if curve else None)
        seconds = time.perf_counter() - t0
        theta = model.transform(corpus.test_halves[0])
    s = score(model, ev, theta, seconds)
    return {"corpus": corpus_key, "k": k, "seed": seed, "params": params, "coherence": s.coherence,
            "diversity": s.diversity, "quality": s.quality, "test_perplexity": s.perplexity,
            "valid_perplexity": model.valid_perplexity_, "best_epoch": model.best_epoch_,
            "epochs_run": model.n_iter_, "seconds": seconds,
            "collapse": getattr(model, "collapse_", None) is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="20ng")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seeds", default="2019")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="TopicModel parameter")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--json-out", type=Path, default=None, help="append one JSON line per run")
    ap.add_argument("--curve", action="store_true",
                    help="print every epoch's validation perplexity and training-document quality (e.g. with "
                         "--set patience=None --set epochs=300: does quality keep rising after perplexity stops?)")
    args = ap.parse_args(argv)
    params = {}
    for item in args.set:
        name, _, value = item.partition("=")
        params[name] = parse_value(value)
    for seed in [int(s) for s in args.seeds.split(",")]:
        row = run(args.corpus, args.k, seed, params, args.data, args.threads, curve=args.curve)
        line = json.dumps(row)
        print(f"{args.corpus} K={args.k} seed={seed} {params}: quality {row['quality']:.4f} "
              f"coh {row['coherence']:.4f} div {row['diversity']:.3f} test ppl {row['test_perplexity']:.0f} "
              f"valid ppl {row['valid_perplexity']:.0f} epochs {row['best_epoch']}/{row['epochs_run']} "
              f"{row['seconds']:.0f}s", flush=True)
        if args.json_out:
            with open(args.json_out, "a") as fh:
                fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
