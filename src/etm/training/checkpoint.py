"""Resumable training checkpoints, each one directory written as a unit.

A checkpoint directory (``CHECKPOINT_DIR/last``) holds::

    model.safetensors, vocab.txt, config.json   the model at that point (loadable with load_model)
    optimizer.safetensors                         optimizer tensors, RNG states, weight averages, the
                                                  best weights so far and regularisers' state (the
                                                  clustering term's warm start)
    trainer.json                                  counters (epochs and steps done), the epoch's running
                                                  sums, history, settings, optimizer hyper-parameters

It is built in a staging directory beside its place and swapped in whole
(:func:`etm._io.replace_directory`), so a crash at any instant leaves either
the previous checkpoint or the new one, never a mix; :func:`read_checkpoint`
first undoes what an interrupted swap left behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from etm._io import (
    atomic_write_bytes,
    atomic_write_text,
    read_text_checked,
    recover_directory,
    replace_directory,
    staging_directory,
)
from etm.model import ETM
from etm.persistence import _read_tensors, load_model, save_model

__all__ = ["write_checkpoint", "read_checkpoint", "restore_optimizer", "checkpoint_progress", "run_checkpoints",
           "latest_checkpoint"]

_TRAINER = "trainer.json"
_TENSORS = "optimizer.safetensors"


def write_checkpoint(
    directory: str | os.PathLike[str],
    model: ETM,
    vocabulary: Sequence[str],
    optimizer: Any,
    trainer_state: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint to ``directory``, replacing the one there as a unit.

    ``tensors`` are extra named tensors (RNG states ``rng.*``, weight
    averages ``ema.*``, best weights ``best.*``) stored beside the
    optimizer's; ``trainer_state`` is JSON-able.
    """
    target = Path(directory)
    recover_directory(target)
    staging = staging_directory(target)
    try:
        save_model(staging, model, vocabulary, extra=extra)
        opt_state = optimizer.state_dict()
        stored: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for idx, entry in opt_state["state"].items():
            for name, value in entry.items():
                if torch.is_tensor(value):
                    stored[f"state.{idx}.{name}"] = value.detach().to("cpu").contiguous()
                else:
                    scalars.setdefault(str(idx), {})[name] = value
        for name, value in tensors.items():
            stored[name if "." in name else f"rng.{name}"] = value.detach().to("cpu").contiguous()
        atomic_write_bytes(staging / _TENSORS, st_save(stored))
        trainer = {**trainer_state, "optimizer_param_groups": opt_state["param_groups"],
                   "optimizer_scalars": scalars}
        atomic_write_text(staging / _TRAINER, json.dumps(trainer, indent=1))
        replace_directory(staging, target)
    except BaseException:
        recover_directory(target)
        raise
    return target


def read_checkpoint(
    directory: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> tuple[ETM, list[str], dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Returns ``model, vocabulary, config, trainer_state, tensors``; see
    :func:`restore_optimizer` for the optimizer's part.
    """
    root = Path(directory)
    recover_directory(root)
    if not (root / _TRAINER).is_file():
        raise FileNotFoundError(f"{root / _TRAINER} is missing: {root} is not a complete training checkpoint")
    model, vocab, config = load_model(root, device=device)
    try:
        trainer = json.loads(read_text_checked(root / _TRAINER))
    except json.JSONDecodeError as err:
        raise ValueError(f"{root / _TRAINER} is corrupt: invalid JSON at line {err.lineno}") from None
    if not isinstance(trainer, dict) or "epochs_completed" not in trainer:
        raise ValueError(f"{root / _TRAINER} is not an etm trainer state (no 'epochs_completed')")
    return model, vocab, config, trainer, _read_tensors(root / _TENSORS)


def checkpoint_progress(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``{"epochs_completed", "steps_completed", "num_topics"}`` of the checkpoint in ``directory``, or None."""
    root = Path(directory)
    recover_directory(root)
    if not (root / _TRAINER).is_file():
        return None
    try:
        trainer = json.loads(read_text_checked(root / _TRAINER))
        config = json.loads(read_text_checked(root / "config.json"))
    except (OSError, ValueError):
        return {"epochs_completed": None, "steps_completed": None, "num_topics": None}
    return {
        "epochs_completed": trainer.get("epochs_completed") if isinstance(trainer, dict) else None,
        "steps_completed": trainer.get("steps_completed", 0) if isinstance(trainer, dict) else None,
        "num_topics": (config.get("model") or {}).get("num_topics") if isinstance(config, dict) else None,
    }


def run_checkpoints(root: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The resumable checkpoints under a checkpoint directory, name -> :func:`checkpoint_progress`.

    ``"last"`` is a single run's; ``"init-0"``, ``"init-1"``, ... (in run
    order) are the runs of ``TopicModel(n_init > 1)``, each in ``init-i/last``.
    """
    root = Path(root)
    found: dict[str, dict[str, Any]] = {}
    single = checkpoint_progress(root / "last")
    if single is not None:
        found["last"] = single
    runs = [p for p in root.glob("init-*") if p.name[5:].isdigit()] if root.is_dir() else []
    for run in sorted(runs, key=lambda p: int(p.name[5:])):
        progress = checkpoint_progress(run / "last")
        if progress is not None:
            found[run.name] = progress
    return found


def latest_checkpoint(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The progress of the checkpoint a resume continues (the last run's with ``n_init``), with ``runs``: how many."""
    found = run_checkpoints(root)
    if not found:
        return None
    runs = [name for name in found if name != "last"]
    latest = dict(found["last"] if "last" in found else found[runs[-1]])
    latest["runs"] = len(runs)
    return latest


def restore_optimizer(optimizer: Any, trainer: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Load the optimizer state saved by :func:`write_checkpoint` into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in trainer.get("optimizer_scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = trainer["optimizer_param_groups"]
    for group in groups:
        if "betas" in group and isinstance(group["betas"], list):
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
