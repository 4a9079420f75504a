"""``etm tune``: search K and the quality levers with Optuna (:func:`etm.tuning.tune`).

``add_parser(sub)`` adds the sub-parser, ``run(args)`` runs it and returns the
``--json`` summary (the pattern of every module of :mod:`etm.cli`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def _spec(name: str) -> Any:
    def parse(text: str) -> Any:
        from etm.tuning.space import parse_spec

        try:
            return parse_spec(name, text)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = "range"
    return parse


def _param(text: str) -> tuple[str, Any]:
    """``NAME=SPEC`` of ``--param``."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=RANGE, NAME=a,b or NAME=VALUE, got {text!r}")
    name = name.strip().lstrip("-").replace("-", "_")
    return name, _spec(name)(spec)


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_parser(sub: Any) -> None:
    """`etm tune`: the study's budget, space, storage and workers."""
    p = sub.add_parser(
        "tune", help="search the number of topics and the training settings with Optuna",
        description="Train many models with settings drawn by Optuna (K, KL weight, temperature, encoder token "
                    "drop, learning rate by default) and score each on the corpus's validation split: topic quality "
                    "(NPMI coherence over the validation documents, estimated for a small reference, x diversity) and "
                    "document-completion perplexity. "
                    "Poor trials are pruned from their per-epoch validation curves. Writes the chosen models (the "
                    "Pareto front, or the best trial of one objective), trials.csv/json and two figures to "
                    "STUDY_DIR; Ctrl-C keeps every finished trial, --resume continues.")
    p.add_argument("corpus", help="prepared corpus directory (etm prepare, authors' or OCTIS layout)")
    p.add_argument("-o", "--output", required=True, metavar="STUDY_DIR",
                   help="study directory: journal (the study itself), models/, trials.csv, trials.json, figures")
    g = p.add_argument_group("search")
    g.add_argument("--trials", type=_positive(int), default=30,
                   help="finished trials the study should hold, those of earlier sessions and other workers "
                        "included (default 30)")
    g.add_argument("--num-topics", "--num_topics", type=_spec("n_topics"), default=None, metavar="RANGE",
                   help="K: LOW:HIGH, LOW:HIGH:log, LOW:HIGH:STEP, a,b,c or one value (default 10:100:log)")
    g.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=SPEC",
                   help="search another option or change a range (kl_weight=0.1:1:log, background=0,1, "
                        "encoder_token_drop=0:0.5), or fix one (hidden_size=400, lr=0.002); NAME is the TopicModel "
                        "parameter. Repeatable")
    g.add_argument("--epochs", type=_positive(int), default=None,
                   help="epochs of every trial (default: etm train's, about 2,000 steps)")
    g.add_argument("--patience", type=_positive(int), default=None,
                   help="early stopping of every trial on validation perplexity (default: etm train's)")
    g.add_argument("--objective", default="both", choices=["both", "quality", "perplexity"],
                   help="both: the Pareto front of validation quality and perplexity; or one of them (default both)")
    g.add_argument("--pruner", default="halving", choices=["halving", "median", "none"],
                   help="Optuna pruner on the per-epoch validation curve (validation quality with both objectives, "
                        "else the objective): successive halving, or the median rule (default halving)")
    g.add_argument("--valid-size", "--valid_size", type=_positive(float), default=None, metavar="F",
                   help="move this share of the training documents to the validation split first (for corpora with "
                        "few validation documents, e.g. the authors' 20NG's 100)")
    g.add_argument("--seed", type=int, default=None, help="seed of the sampler and of every trial (default 2019)")
    g = p.add_argument_group("running")
    g.add_argument("--timeout", type=_positive(float), default=None, metavar="S",
                   help="start no trial after S seconds (running ones finish)")
    g.add_argument("--n-jobs", "--n_jobs", type=_positive(int), default=1, metavar="J",
                   help="worker processes on this machine sharing the study (default 1)")
    g.add_argument("--storage", default=None, metavar="URL",
                   help="a database Optuna supports (postgresql://user:pw@host/db, mysql://, sqlite:///...) so "
                        "workers on several machines share one study; default: a journal file in STUDY_DIR")
    g.add_argument("--study-name", "--study_name", default="etm-tune", help="the study's name in its storage")
    g.add_argument("--resume", action="store_true",
                   help="continue the study (or join it from another machine); without it an existing study is "
                        "refused")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    g.add_argument("--threads", type=_positive(int), default=None,
                   help="CPU threads per worker (default: the CPUs shared out between workers)")
    g.add_argument("--keep-models", "--keep_models", action="store_true",
                   help="keep every finished trial's model, not only the chosen ones")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def _space(args: argparse.Namespace) -> dict[str, Any]:
    space: dict[str, Any] = dict(args.param)
    for name, value in (("n_topics", args.num_topics), ("epochs", args.epochs), ("patience", args.patience)):
        if value is not None:
            space[name] = value
    return space


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.options import DEFAULTS
    from etm.tuning import tune
    from etm.tuning.search import edge_text
    from etm.tuning.storage import optuna_module

    try:
        optuna = optuna_module()
    except ImportError as err:
        raise RuntimeError(str(err)) from None
    if not args.verbose:  # one line per trial: the training loop's and Optuna's own lines only with -v
        logging.getLogger("etm.training").setLevel(logging.WARNING)
        logging.getLogger("etm.estimator").setLevel(logging.ERROR)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        result = tune(args.corpus, args.output, n_trials=args.trials, space=_space(args), objective=args.objective,
                      pruner=args.pruner, timeout=args.timeout, n_jobs=args.n_jobs, storage=args.storage,
                      study_name=args.study_name, resume=args.resume, valid_size=args.valid_size,
                      seed=DEFAULTS["random_state"] if args.seed is None else args.seed, device=args.device,
                      threads=args.threads, keep_models=args.keep_models, verbose=not (args.quiet or args.json))
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished trial is kept in {args.output}; continue with the same command plus "
              "--resume", file=sys.stderr)
        raise
    chosen = [{"trial": t.number, "settings": t.params, "values": list(t.values),
               **{k: t.user_attrs.get(k) for k in ("quality", "coherence", "diversity", "perplexity", "model")},
               "at_edge": result.edges.get(t.number, {})}
              for t in result.chosen]
    summary = {"study_dir": args.output, "study": args.study_name, "trials": result.counts, "chosen": chosen,
               "files": {k: str(v) for k, v in result.files.items()}}
    if not args.json:
        counts = result.counts
        print(f"{counts['complete']} trials complete, {counts['pruned']} pruned, {counts['failed']} failed; "
              f"table in {result.files['trials_csv']}")
        what = "Pareto front of validation quality and perplexity" if args.objective == "both" else "best trial"
        print(f"chosen ({what}):")
        for row in chosen:
            settings = " ".join(f"{k}={_short(v)}" for k, v in row["settings"].items())
            print(f"  trial {row['trial']}: {settings}\n    validation quality {row['quality']:.4f}, perplexity "
                  f"{row['perplexity']:.1f}; model {row['model'] or '(saved on another machine)'}")
            if row["at_edge"]:
                print(f"    at the edge of the search space: {edge_text(row['at_edge'], result.space)}; "
                      "the best may lie beyond: widen those ranges and --resume")
    return summary


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)
