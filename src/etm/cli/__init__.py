"""The ``etm`` command line: prepare, train, embed, neighbors, label, plot, evaluate, topics, transform, report, tune.

Human-readable output goes to stdout, logs to stderr; ``--json`` prints one
JSON document instead, for scripts. Option names follow the authors'
``main.py`` (``--num_topics`` and ``--num-topics`` both work).

Each command is one module of this package (``etm.cli.prepare``, ...) with
two functions: ``add_parser(sub)`` adds its sub-parser, ``run(args)`` runs it
through the library's public functions and returns the summary that
``--json`` prints (None prints nothing). :data:`COMMANDS` lists them; a new
command is a new module plus its name there. What several commands share
(argument types, reading and preprocessing options) is in ``etm.cli._common``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["main", "build_parser", "COMMANDS"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The commands, in the order ``etm --help`` lists them: each is the module ``etm.cli.<name>``.
COMMANDS: tuple[str, ...] = (
    "prepare",
    "train",
    "embed",
    "neighbors",
    "label",
    "plot",
    "evaluate",
    "topics",
    "transform",
    "report",
    "tune",
)


def command(name: str) -> ModuleType:
    """The module of command ``name`` (with its ``add_parser`` and ``run``)."""
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etm",
        description="Embedded Topic Model (Dieng, Ruiz & Blei, 2020): prepare a corpus, train, evaluate, "
                    "list topics and infer topic proportions.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug, from every process of etm train --nproc)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse printed a usage error (e.g. --epochs 0): return its code; --help exits
        if stop.code == EXIT_USAGE:
            return EXIT_USAGE
        raise
    if args.version:
        from etm._version import __version__

        print(f"etm {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    level = logging.WARNING - 10 * min(args.verbose + 1, 2) if args.verbose else logging.WARNING
    if args.command in ("train", "tune") and not args.verbose:
        level = logging.INFO if not getattr(args, "json", False) else logging.WARNING
    if args.command == "train" and _worker_rank() > 0 and args.verbose < 2:
        level = max(level, logging.WARNING)  # --nproc: the main process tells the progress; a worker only its problems
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "train" and args.nproc > 1:
        from etm.training.distributed import launch, launched_by_torchrun

        if not launched_by_torchrun():
            try:
                command("train").check_before_launch(args)
            except ValueError as err:
                print(f"etm train: error: {err}", file=sys.stderr)
                return 1
            return launch(_without_option(list(sys.argv[1:] if argv is None else argv), "--nproc"), args.nproc)
    try:
        result = command(args.command).run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, UnicodeDecodeError):
            message = err.reason
        print(f"etm {args.command}: error: {message}", file=sys.stderr)
        return 1
    if result is None:  # a data-parallel worker other than the main one: nothing to report
        return 0
    try:
        if args.json:
            print(json.dumps(result, indent=1, default=_json_default))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `etm topics M --json | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _worker_rank() -> int:
    """This process's rank when torchrun started it (``etm train --nproc``), else 0 (before the process group)."""
    from etm.training.distributed import launched_by_torchrun

    try:
        return int(os.environ["RANK"]) if launched_by_torchrun() else 0
    except ValueError:
        return 0


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (to re-run a command under torchrun)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
