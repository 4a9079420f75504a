"""Model files: safetensors weights + JSON config + vocabulary, never pickles.

A saved model is a directory::

    model.safetensors   the ETM state dict (fixed embeddings included)
    config.json         format version, model arguments, training settings,
                        preprocessing, seed, versions, provenance
    vocab.txt           one word per line, column order of beta

The three files are written as one unit: each goes to a temporary file first
and ``config.json`` is renamed into place last, so a directory with a
``config.json`` holds a complete model and a crash mid-save never leaves a mix
of two models. Training checkpoints build on this (:mod:`etm.training.checkpoint`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from etm._io import commit_files, read_text_checked, recover_directory
from etm.model import DECODERS, ETM, SIMILARITIES

logger = logging.getLogger(__name__)

__all__ = ["save_model", "load_model", "model_arguments", "MODEL_FORMAT_VERSION"]

MODEL_FORMAT_VERSION = 1
_MODEL_ARGS = ("num_topics", "vocab_size", "t_hidden_size", "rho_size", "theta_act", "train_embeddings", "enc_drop")


def _versions() -> dict[str, str]:
    from etm._version import __version__

    return {"etm": __version__, "torch": torch.__version__, "python": platform.python_version()}


def model_arguments(model: ETM) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``'s architecture."""
    return {
        "num_topics": model.num_topics,
        "vocab_size": model.vocab_size,
        "t_hidden_size": model.t_hidden_size,
        "rho_size": model.rho_size,
        "theta_act": model.theta_act_name,
        "train_embeddings": model.train_embeddings,
        "enc_drop": model.enc_drop,
        "background": model.background is not None,
        "trainable_embedding_rows": int(getattr(model.rho, "rows", torch.empty(0)).numel()),
        "similarity": model.similarity,
        "temperature": model.temperature,
        "decoder": model.decoder,
    }


def _state_bytes(model: ETM) -> bytes:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return st_save(state)


def save_model(
    directory: str | os.PathLike[str],
    model: ETM,
    vocabulary: Sequence[str],
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` with its vocabulary and settings to ``directory``.

    ``extra`` holds JSON-able metadata (training settings, preprocessing,
    seed, history) stored in ``config.json`` beside the model arguments.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    vocab = [str(w) for w in vocabulary]
    if len(vocab) != model.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} words but the model has vocab_size={model.vocab_size}")
    for w in vocab:
        if "\n" in w or "\r" in w:
            raise ValueError(f"vocabulary word {w!r} contains a line break and cannot be saved")
    config = {
        "format": "etm-model",
        "format_version": MODEL_FORMAT_VERSION,
        "model": model_arguments(model),
        "versions": _versions(),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    commit_files(out, {
        "model.safetensors": _state_bytes(model),
        "vocab.txt": ("\n".join(vocab) + "\n").encode("utf-8"),
        "config.json": json.dumps(config, indent=1, ensure_ascii=False).encode("utf-8"),
    }, marker="config.json")
    return out


def _read_config(root: Path) -> dict[str, Any]:
    path = root / "config.json"
    if not root.exists():
        recover_directory(root)  # a replacement interrupted between its two renames
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {root} does not exist")
    if not path.is_file():
        if (root / "model.safetensors").is_file():
            raise FileNotFoundError(f"{path} is missing: the model in {root} is incomplete (its save was "
                                    "interrupted); save or train it again")
        raise FileNotFoundError(f"{path} is missing: {root} is not a model saved by etm")
    try:
        config = json.loads(read_text_checked(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is corrupt: invalid JSON at line {err.lineno}, column {err.colno}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not an etm model config: expected a JSON object, got {_json_kind(config)}")
    if config.get("format") != "etm-model":
        raise ValueError(f"{path} is not an etm model config (format={config.get('format')!r})")
    version = config.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {version!r} is not supported; this etm reads version "
            f"{MODEL_FORMAT_VERSION} (upgrade etm to load newer models)"
        )
    _check_model_section(path, config.get("model", {}))
    return config


def _is_count(value: Any, least: int = 1) -> bool:
    return type(value) is int and value >= least  # JSON true/false are not counts


def _is_fraction(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < 1


#: What each entry of config.json's "model" section must hold, checked before the architecture is rebuilt.
_MODEL_ARG_CHECKS: dict[str, tuple[Any, str]] = {
    "num_topics": (_is_count, "a positive integer"),
    "vocab_size": (_is_count, "a positive integer"),
    "t_hidden_size": (_is_count, "a positive integer"),
    "rho_size": (_is_count, "a positive integer"),
    "theta_act": (lambda v: isinstance(v, str), "an activation name (a string)"),
    "train_embeddings": (lambda v: isinstance(v, bool), "true or false"),
    "enc_drop": (_is_fraction, "a number in [0, 1)"),
    "background": (lambda v: isinstance(v, bool), "true or false"),
    "trainable_embedding_rows": (lambda v: _is_count(v, 0), "a non-negative integer"),
    # optional (models saved before they existed are dot-product models)
    "similarity": (lambda v: v in SIMILARITIES, f"one of {list(SIMILARITIES)}"),
    "temperature": (lambda v: type(v) in (int, float) and v > 0, "a positive number"),
    "decoder": (lambda v: v in DECODERS, f"one of {list(DECODERS)}"),
}


def _check_model_section(path: Path, section: Any) -> None:
    """Every architecture argument present with the right type, so a hand-edited config fails naming its field."""
    if not isinstance(section, dict):
        raise ValueError(f"{path}: the 'model' section must be a JSON object, got {_json_kind(section)}")
    missing = [k for k in _MODEL_ARGS if k not in section]
    if missing:
        raise ValueError(f"{path}: the 'model' section lacks {missing}")
    for key, (check, expected) in _MODEL_ARG_CHECKS.items():
        if key in section and not check(section[key]):
            raise ValueError(f"{path}: model.{key} must be {expected}, got {json.dumps(section[key])}")


def _json_kind(value: Any) -> str:
    """How JSON calls the type of a parsed value: "a list", "a string"..."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is corrupt or truncated: {err}") from None


def _read_vocab(path: Path) -> list[str]:
    words = read_text_checked(path).split("\n")
    if words and words[-1] == "":
        words.pop()
    return words


def load_model(
    directory: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> tuple[ETM, list[str], dict[str, Any]]:
    """Load a model saved by :func:`save_model`.

    Returns the model (in eval mode), its vocabulary and its config. Every
    check names what is wrong: format version, missing or unexpected tensors,
    shapes, vocabulary length.
    """
    root = Path(directory)
    config = _read_config(root)
    args = dict(config["model"])
    vocab = _read_vocab(root / "vocab.txt")
    if len(vocab) != args["vocab_size"]:
        raise ValueError(
            f"{root / 'vocab.txt'} has {len(vocab)} words but config.json says vocab_size={args['vocab_size']}"
        )
    state = _read_tensors(root / "model.safetensors")
    embeddings = None
    trainable_rows = None
    if not args["train_embeddings"]:
        if args.get("trainable_embedding_rows"):
            for key in ("rho.fixed", "rho.rows"):
                if key not in state:
                    raise ValueError(f"{root / 'model.safetensors'} lacks {key!r}, which its config declares")
            embeddings, trainable_rows = state["rho.fixed"], state["rho.rows"]
        elif "rho.weight" not in state:
            raise ValueError(f"{root / 'model.safetensors'} lacks the fixed embeddings 'rho.weight'")
        else:
            embeddings = state["rho.weight"]
    background = None
    if args.get("background"):
        if "background" not in state:
            raise ValueError(f"{root / 'model.safetensors'} lacks the 'background' word bias its config declares")
        background = state["background"]
    with torch.random.fork_rng(devices=[]):  # initialising the module must not move the caller's RNG
        model = _build(args, embeddings, background, trainable_rows)
    _load_state_strict(model, state, root / "model.safetensors")
    model.to(device)
    model.eval()
    return model, vocab, config


def _build(
    args: dict[str, Any],
    embeddings: torch.Tensor | None,
    background: torch.Tensor | None,
    trainable_rows: torch.Tensor | None = None,
) -> ETM:
    return ETM(
        args["num_topics"],
        args["vocab_size"],
        args["t_hidden_size"],
        args["rho_size"],
        theta_act=args["theta_act"],
        embeddings=embeddings,
        train_embeddings=args["train_embeddings"],
        enc_drop=args["enc_drop"],
        trainable_rows=trainable_rows,
        background=background,
        similarity=args.get("similarity", "dot"),
        temperature=args.get("temperature", 0.1),
        decoder=args.get("decoder", "mixture"),
    )


def _load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source} does not match the model: missing tensors {missing}, unexpected {unexpected}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
        if not torch.isfinite(state[key]).all():
            raise ValueError(f"{source}: tensor {key!r} contains NaN or infinity")
    model.load_state_dict(state)
