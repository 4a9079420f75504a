"""Atomic writes and checked reads: a crash never leaves half a file behind."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text_checked(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """Read a whole text file; undecodable bytes raise an error naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist or is not a file")
    return _decode(p.read_bytes(), p, encoding)


# --------------------------------------------------------------------------- #
# Helpers shared by the document readers (etm.readers) and the prepared-corpus
# readers (etm.formats): checked, gzip-aware reads and split names.
# --------------------------------------------------------------------------- #
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _normalise_split(value: Any, where: str) -> str:
    key = str(value).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise ValueError(
            f"{where}: unknown split {value!r}; expected one of train, valid, test "
            f"(also accepted: {', '.join(sorted(set(_SPLIT_ALIASES) - {'train', 'valid', 'test'}))})"
        )
    return _SPLIT_ALIASES[key]


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if not p.is_file():
        raise ValueError(f"{p} is not a file")
    return p


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip-compressed (by magic bytes or a ``.gz`` suffix)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC or path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    return path.read_bytes()


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    """Decode, naming the file and 1-based line of undecodable bytes; drops a UTF-8 byte-order mark."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UnicodeDecodeError(
            err.encoding,
            err.object,
            err.start,
            err.end,
            f"{err.reason} in {path}, line {line}; pass the right encoding (e.g. --encoding latin-1)",
        ) from None
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} for {path}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _read_text(path: str | os.PathLike[str], encoding: str) -> tuple[Path, str]:
    p = _check_file(path)
    raw = _read_bytes(p)
    if not raw:
        raise ValueError(f"{p} is empty")
    return p, _decode(raw, p, encoding)


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only (``str.splitlines`` also splits on form feeds etc., shifting line numbers)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
