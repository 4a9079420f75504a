"""``etm train``: train an ETM on a corpus, prepared or raw (prepared on the fly); ``--nproc N`` runs N processes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from etm.cli._common import (
    add_preprocessing_options,
    add_reading_options,
    flag,
    non_negative_int,
    positive_int,
    prepare_raw,
    print_topics,
)
from etm.corpus import is_corpus_dir, open_corpus

logger = logging.getLogger("etm.cli")


def add_parser(sub: Any) -> None:
    """`etm train`: the training options come from :mod:`etm.options`, the rest is how and where it runs."""
    from etm.options import add_training_options, training_groups

    p = sub.add_parser("train", help="train an ETM on a prepared corpus",
                       description="Train with the authors' defaults; the best epoch is chosen on the "
                                   "validation split's document-completion perplexity.")
    p.add_argument("corpus", help="corpus directory from `etm prepare`, an authors'/OCTIS directory, or raw "
                                  "documents (any `etm prepare` input: prepared on the fly into OUTPUT/corpus)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    add_reading_options(p)
    g = add_preprocessing_options(p)
    g.add_argument(*flag("--split-seed"), type=int, default=0,
                   help="raw input: seed of splits and completion halves (default 0)")
    groups = training_groups(p)
    g = groups["embeddings"]
    g.add_argument("--embeddings", *flag("--emb-path"), dest="embeddings", default=None, metavar="FILE",
                   help="word2vec text/binary, GloVe or fastText .vec file (e.g. from `etm embed`); only the "
                        "vocabulary's rows are read and they are stored in the model")
    g.add_argument(*flag("--embeddings-format"), default="auto",
                   choices=["auto", "word2vec", "word2vec-binary", "glove", "fasttext"],
                   help="format of --embeddings (default: detected)")
    groups["seeding"].add_argument(
        "--seeds", default=None, metavar="FILE",
        help="JSON or YAML file of topic name -> seed words; seeded topics come first and keep their names")
    add_training_options(groups)
    g = groups["optimisation"]
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads per process (default: the process's CPUs, shared out between --nproc processes; "
                        "also ETM_THREADS)")
    g.add_argument("--nproc", type=positive_int, default=1,
                   help="data-parallel processes on this machine (runs torchrun; default 1). Across machines, start "
                        "`torchrun --nnodes M --nproc_per_node N ... -m etm train ...` on each")
    g = groups["checkpoints"]
    g.add_argument(*flag("--checkpoint-dir"), default=None,
                   help="where resumable checkpoints go (default: OUTPUT/checkpoints)")
    g.add_argument("--resume", action="store_true",
                   help="continue the training whose checkpoint is in OUTPUT, exactly where it stopped (settings "
                        "such as --lr and --epochs may change; the model's shape may not)")
    g.add_argument("--force", action="store_true",
                   help="replace a model already in OUTPUT; the old one stays readable until the new one is complete")
    p.add_argument("--topics", type=non_negative_int, default=10, help="topics to print at the end (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    from etm.training.distributed import init_from_environment, launched_by_torchrun, shutdown

    if not launched_by_torchrun():
        if args.threads is not None:
            from etm.device import set_threads

            set_threads(args.threads)
        return _train(args, args.device, lead=True)
    device = init_from_environment(args.device, args.threads)
    try:
        from etm.training.distributed import is_main_process

        return _train(args, str(device), lead=is_main_process())
    finally:
        shutdown()


def check_before_launch(args: argparse.Namespace) -> None:
    """Errors every one of ``--nproc`` processes would hit, raised once before any starts (each costs seconds)."""
    from pathlib import Path

    from etm.corpus.batching import check_shards_for_processes
    from etm.corpus.shards import ShardedCorpus
    from etm.training.loop import check_lazy_updates_world

    if getattr(args, "lazy_updates", False):
        check_lazy_updates_world(args.nproc)

    path = Path(args.corpus)
    if not (path / "meta.json").is_file():
        return  # not a sharded corpus: the processes read it and report what is wrong with it
    try:
        corpus = ShardedCorpus.load(path)
    except (OSError, ValueError):
        return
    check_shards_for_processes(len(corpus.parts["train"]), args.nproc)


def _train(args: argparse.Namespace, device: str, *, lead: bool) -> dict[str, Any] | None:
    """Train; in a data-parallel run every process calls this and only the main one writes and prints."""

    from etm.outputs import plan_model_output

    if args.force and args.resume:
        raise ValueError("--force starts a new model and --resume continues one: give one of them")
    plan = plan_model_output(args.output, checkpoint_dir=args.checkpoint_dir, force=args.force, resume=args.resume,
                             dry_run=not lead)
    try:
        return _train_into(args, device, plan, lead=lead)
    except KeyboardInterrupt:
        raise
    except BaseException:
        plan.abandon()
        raise


def _train_into(args: argparse.Namespace, device: str, plan: Any, *, lead: bool) -> dict[str, Any] | None:
    from etm.estimator import TopicModel
    from etm.options import estimator_kwargs

    out = plan.work
    if is_corpus_dir(args.corpus):  # a sharded corpus stays on disk
        corpus = open_corpus(args.corpus)
    else:  # raw documents: prepare them with the preprocessing options and keep the corpus beside the model
        corpus, report = prepare_raw(args, args.corpus, args.split_seed)
        if lead:
            corpus.save(out / "corpus")
        logger.info("prepared %s into %s: vocabulary %d words, %s", args.corpus, plan.final / "corpus",
                    len(corpus.vocabulary), {k: v for k, v in report.items() if k.startswith("dropped")})
    if lead and not corpus.completion_chunks("valid"):
        logger.warning("%s has no validation split: the last epoch is kept", args.corpus)
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else out / "checkpoints"
    est = TopicModel(
        **estimator_kwargs(args), embeddings=_read_embeddings_arg(args, corpus.vocabulary), seed_topics=args.seeds,
        device=device, checkpoint_dir=str(ckpt), verbose=lead and not (args.quiet or args.json),
    )
    est.provenance_ = {"corpus": str(Path(args.corpus).resolve()), "command": "etm train"}
    pre = corpus.settings.get("preprocessing") if corpus.settings else None
    t0 = time.perf_counter()
    try:
        est.fit(corpus, resume=args.resume)
    except KeyboardInterrupt:
        if lead:
            where = ckpt / "last" if args.n_init == 1 else ckpt
            print(f"\ninterrupted: a resumable checkpoint is in {where}; continue with the same "
                  f"command{' with --resume instead of --force' if args.force else ' plus --resume'}",
                  file=sys.stderr)
        raise
    if not lead:
        return None
    if pre is not None:
        from etm.preprocessing import Preprocessor

        est.preprocessor_ = Preprocessor.from_settings(pre, vocabulary=est.vocabulary_)
    est.save(out)
    from etm._io import atomic_write_text

    atomic_write_text(out / "history.json", json.dumps(est.history_, indent=1))
    plan.finish()
    out = plan.final
    summary = {
        "output": str(out),
        "embeddings": est.embedding_report_,
        "corpus_embeddings": est.corpus_embeddings_,
        "corpus_embedding_method": est.corpus_embedding_method_,
        "epochs_run": est.n_iter_,
        "best_epoch": est.best_epoch_,
        "valid_perplexity": est.valid_perplexity_,
        "seconds": round(time.perf_counter() - t0, 2),
        "device": est.device_,
        "topic_names": est.topic_names_,
        "topics": est.get_topics(10),
        "seeding": est.seed_report_,
        "batch_size": est.batch_size_,
        "max_epochs": est.epochs_,
        "collapse": est.collapse_,
        "init_seed": est.init_seed_,
        "restarts": est.restarts_,
    }
    if not args.json:
        ppl = "n/a" if est.valid_perplexity_ is None else f"{est.valid_perplexity_:.1f}"
        if est.embedding_report_:
            rep = est.embedding_report_
            kind = "word embeddings" if est.corpus_embeddings_ else "pretrained embeddings"
            why = " (short documents; --corpus-embeddings 0 learns them with the topics)" \
                if est.corpus_embeddings_ and args.corpus_embeddings is None else ""
            print(f"{kind} {rep['source']}{why}: {rep['covered']} of {rep['vocabulary_size']} words "
                  f"({100 * rep['coverage']:.1f}%), {rep['dimension']} dimensions, "
                  f"{'fine-tuned' if args.fine_tune_embeddings else 'fixed'}")
        _print_restarts(est.restarts_, est.init_seed_)
        print(f"trained {est.n_iter_} epochs in {summary['seconds']} s on {est.device_}; best epoch "
              f"{est.best_epoch_}, validation perplexity {ppl}; model saved to {out}")
        print_topics(summary["topics"], args.topics, est.topic_names_ if est.n_seeded_topics_ else None)
    return summary


def _print_restarts(restarts: list[dict[str, Any]] | None, kept_seed: int) -> None:
    """One line per run of --n-init, the kept one marked: its validation scores, what it was chosen on."""
    if not restarts:
        return
    print(f"{len(restarts)} runs, kept the best validation quality (coherence over the validation documents x "
          "diversity):")
    for i, r in enumerate(restarts, start=1):
        ppl = "n/a" if r["valid_perplexity"] is None else f"{r['valid_perplexity']:.1f}"
        mark = "  <- kept" if r["seed"] == kept_seed else ""
        print(f"  run {i} (seed {r['seed']}): quality {r['quality']:.4f} (coherence {r['coherence']:.4f}, "
              f"diversity {r['diversity']:.3f}), validation perplexity {ppl}, {r['epochs']} epochs{mark}")


def _read_embeddings_arg(args: argparse.Namespace, vocabulary: Sequence[str]) -> Any:
    if not args.embeddings:
        if args.fine_tune_embeddings:
            raise ValueError("--fine-tune-embeddings needs --embeddings FILE")
        return None
    from etm.embeddings import load_embeddings

    return load_embeddings(args.embeddings, vocabulary, format=args.embeddings_format, random_state=args.random_state)
