"""Where the commands write: checked before any work starts, and never over a model or corpus by accident.

A directory that already holds an etm model (or a training checkpoint) is
continued only with ``--resume`` and replaced only with ``--force``; the
replacement is built beside it and swapped in whole when complete, so the old
model stays readable until then. A directory holding files etm did not write
is never written into. Writability is probed up front, so a bad ``-o`` fails
in the first second rather than at the first checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from etm._io import recover_directory, replace_directory
from etm.training.checkpoint import latest_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["OutputPlan", "plan_model_output", "plan_corpus_output", "check_output_file"]

#: What ``etm train -o DIR`` writes into DIR (anything else there is someone else's).
MODEL_ENTRIES = frozenset({"config.json", "model.safetensors", "vocab.txt", "history.json", "checkpoints", "corpus"})


@dataclass
class OutputPlan:
    """Where a command writes (``work``) and where the result ends up (``final``).

    When ``replaces`` is set, ``work`` is a staging directory beside
    ``final`` that :meth:`finish` swaps in for it.
    """

    final: Path
    work: Path
    replaces: bool = False
    created: bool = False

    def finish(self) -> None:
        if self.replaces:
            replace_directory(self.work, self.final)

    def abandon(self) -> None:
        """After a failure: remove what this plan created and nothing wrote into."""
        if self.created and self.work.is_dir() and not any(self.work.iterdir()):
            self.work.rmdir()


def _probe_writable(directory: Path, option: str) -> bool:
    """Create ``directory`` if needed and check a file can be written there; returns whether it was created."""
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".etm-probe-"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write to {option} {directory}: {err.strerror or err}") from None
    return created


def _describe_model(directory: Path, checkpoint: dict | None) -> str:
    parts = []
    if (directory / "config.json").is_file():
        parts.append("a trained model")
    if checkpoint is not None:
        step = f", step {checkpoint['steps_completed']}" if checkpoint.get("steps_completed") else ""
        if checkpoint.get("runs"):
            parts.append(f"the resumable checkpoints of {checkpoint['runs']} runs of --n-init (the last after epoch "
                         f"{checkpoint['epochs_completed']}{step})")
        else:
            parts.append(f"a resumable checkpoint after epoch {checkpoint['epochs_completed']}{step}")
    return " and ".join(parts)


def _existing_model_message(final: Path, found: dict | None, has_model: bool) -> str:
    """Say which of --resume and --force fits: a finished model is replaced, a broken-off run continued."""
    replace = "pass --force (the old model stays readable until the new one is complete)"
    if has_model:
        return (f"-o {final} already holds {_describe_model(final, found)}. To replace it {replace}; to train it "
                "further pass --resume with a larger --epochs; or choose another -o")
    return (f"-o {final} holds an unfinished run ({_describe_model(final, found)}). To continue it pass --resume; "
            f"to start over {replace}; or choose another -o")


def _foreign_entries(directory: Path, ours: frozenset[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in ours and not p.name.startswith(".etm-probe-"))


def _refuse_foreign(directory: Path, ours: frozenset[str], what: str) -> None:
    foreign = _foreign_entries(directory, ours)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"-o {directory} holds files that are not {what} ({shown}); etm does not write among "
                         "other files: choose a new or empty directory")


def plan_model_output(output: str | os.PathLike[str], *, checkpoint_dir: str | os.PathLike[str] | None,
                      force: bool, resume: bool, dry_run: bool = False) -> OutputPlan:
    """Check ``etm train -o`` before training and decide where the run writes.

    Raises ValueError naming the problem and the option that solves it.
    ``dry_run`` decides without creating or removing anything (for the other
    processes of a data-parallel run, whose main process does that).
    """
    final = Path(output)
    if final.exists() and not final.is_dir():
        raise ValueError(f"-o {final} is an existing file; etm train writes a model directory there: give a "
                         "directory name")
    recover_directory(final)
    staging = final.with_name(f".{final.name}.etm-replacing")
    explicit_ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ckpt = explicit_ckpt or final / "checkpoints"
    found = latest_checkpoint(ckpt)
    has_model = (final / "config.json").is_file()
    if final.is_dir():
        _refuse_foreign(final, MODEL_ENTRIES, "an etm model")
    if resume:
        if explicit_ckpt is None and latest_checkpoint(staging / "checkpoints") is not None:
            logger.info("resuming the replacement of %s being trained in %s", final, staging)
            return OutputPlan(final, staging, replaces=True)
        if found is None and has_model:
            raise ValueError(f"-o {final} holds a trained model but no checkpoint to resume in {ckpt}; pass --force "
                             "instead of --resume to replace it, or choose another -o")
    elif has_model or found is not None:
        if not force:
            raise ValueError(_existing_model_message(final, found, has_model))
        if dry_run:
            return OutputPlan(final, staging, replaces=True)
        if staging.exists():
            shutil.rmtree(staging)
        if explicit_ckpt is not None and found is not None:
            logger.warning("--force: the old checkpoint in %s is replaced by this run's", explicit_ckpt)
            for name in ("last", "best", *(p.name for p in explicit_ckpt.glob("init-*"))):
                shutil.rmtree(explicit_ckpt / name, ignore_errors=True)
        _probe_writable(staging, "-o")
        logger.info("--force: training into %s; it replaces %s when complete", staging, final)
        return OutputPlan(final, staging, replaces=True, created=True)
    if dry_run:
        return OutputPlan(final, final)
    created = _probe_writable(final, "-o")
    if explicit_ckpt is not None:
        _probe_writable(explicit_ckpt, "--checkpoint-dir")
    return OutputPlan(final, final, created=created)


def plan_corpus_output(output: str | os.PathLike[str], *, force: bool) -> OutputPlan:
    """Check ``etm prepare -o`` before reading any document; an existing corpus is replaced only with ``force``."""
    final = Path(output)
    if final.exists() and not final.is_dir():
        raise ValueError(f"-o {final} is an existing file; etm prepare writes a corpus directory there: give a "
                         "directory name")
    recover_directory(final)
    if final.is_dir() and any(final.iterdir()):
        if not (final / "meta.json").is_file():
            _refuse_foreign(final, frozenset(), "an etm corpus")
        if not force:
            raise ValueError(f"-o {final} already holds a prepared corpus; pass --force to replace it (the old one "
                             "stays readable until the new one is complete), or choose another -o")
        _probe_writable(final.parent, "-o")
        return OutputPlan(final, final.with_name(f".{final.name}.etm-tmp-{os.getpid()}"), replaces=True)
    created = _probe_writable(final, "-o")
    return OutputPlan(final, final, created=created)


def check_output_file(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Fail early when an output file cannot be written: a directory there, or no write access."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} {target} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    _probe_writable(parent, option)
    return target
