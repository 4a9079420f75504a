"""Atomic writes and checked reads: a crash never leaves half a file behind."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from etm._textio import DecodeTally, decode_text


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    target = Path(path)
    tmp = _write_temporary(target, data)
    try:
        fault_point("write")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_temporary(target: Path, data: bytes) -> str:
    """``data`` written and flushed to disk in a temporary file beside ``target``; returns its path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        fix_mode(tmp)  # mkstemp makes it 0600; the target gets what the umask gives
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text_checked(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """Read a whole text file; undecodable bytes raise an error naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist or is not a file")
    return decode_text(p.read_bytes(), p, encoding, hint="pass the right encoding (e.g. --encoding latin-1)")


# --------------------------------------------------------------------------- #
# Permissions. mkstemp and NamedTemporaryFile create files 0600 and mkdtemp
# directories 0700, whatever the umask; whatever etm writes through a temporary
# name gets, before its rename, the mode a plain open() or mkdir() would give.
# --------------------------------------------------------------------------- #
_umask_lock = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:  # Linux 4.7+: no window in which another thread could create a file under a changed umask
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere os.umask is the only reader: set it to a strict value for the instant it takes, and
    # serialise our own readers, so two of them cannot leave the strict value behind.
    with _umask_lock:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


def _umask_mode(is_dir: bool = False) -> int:
    """``0o777`` (directories) or ``0o666`` (files) less the umask: e.g. 0o755 / 0o644 under umask 022."""
    return (0o777 if is_dir else 0o666) & ~_current_umask()


def fix_mode(path: str | os.PathLike[str]) -> None:
    """Give ``path`` (a file or a directory) the permissions the umask gives a newly created one."""
    os.chmod(path, _umask_mode(os.path.isdir(path)))


# --------------------------------------------------------------------------- #
# Helpers shared by the document readers (etm.readers) and the prepared-corpus
# readers (etm.corpus.formats): checked, gzip-aware reads and split names.
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


def _read_text(
    path: str | os.PathLike[str], encoding: str, errors: str = "strict", tally: DecodeTally | None = None
) -> tuple[Path, str]:
    """A whole document file, decoded with :func:`etm._textio.decode_text` (``errors`` policy, counted in ``tally``)."""
    p = _check_file(path)
    raw = _read_bytes(p)
    if not raw:
        raise ValueError(f"{p} is empty")
    return p, decode_text(raw, p, encoding, errors=errors, tally=tally)


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only (``str.splitlines`` also splits on form feeds etc., shifting line numbers)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------- #
# Units of several files: directories swapped in whole, and file sets with a
# commit marker. A crash at any instant leaves the old unit or the new one.
# --------------------------------------------------------------------------- #
_TMP_TAG = ".etm-tmp-"
_OLD_TAG = ".etm-old-"
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process at the N-th pass through ``name`` when ``ETM_FAULT_KILL=name:N`` is set.

    The fault-injection tests use it to stop training inside a write, where
    timed kills land too rarely; without the variable it does nothing.
    """
    spec = os.environ.get("ETM_FAULT_KILL")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == int(count or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staging_directory(target: str | os.PathLike[str]) -> Path:
    """A fresh, empty directory beside ``target`` to build its replacement in (see :func:`replace_directory`)."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}{_TMP_TAG}{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_directory(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an older one there.

    The older directory is renamed aside first and removed only after the
    new one is in place; if the process dies between the two renames,
    :func:`recover_directory` puts the older one back.
    """
    tmp, target = Path(tmp), Path(target)
    _fsync_dir(tmp)
    if target.exists():
        old = target.with_name(f".{target.name}{_OLD_TAG}{os.getpid()}")
        os.replace(target, old)
        fault_point("swap")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
        _fsync_dir(target.parent)


def recover_directory(target: str | os.PathLike[str]) -> None:
    """Undo what a crash inside :func:`replace_directory` (or while building) left beside ``target``.

    A missing ``target`` with an older copy aside gets the older copy back;
    half-built staging directories and leftover older copies are removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    old = sorted(target.parent.glob(f".{target.name}{_OLD_TAG}*"))
    if not target.exists() and old:
        os.replace(old[-1], target)
        old = old[:-1]
    for leftover in [*old, *target.parent.glob(f".{target.name}{_TMP_TAG}*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def commit_files(directory: str | os.PathLike[str], files: dict[str, bytes], marker: str) -> None:
    """Write ``files`` into ``directory`` as one unit whose last file, ``marker``, says it is complete.

    Every file is first written under a temporary name (so the previous unit
    stays readable meanwhile); then the old marker is removed, the files are
    renamed into place and the new marker comes last. A reader that finds
    the marker finds a complete unit; a crash in between leaves no marker
    (an incomplete unit, reported as such) and never a mix of two.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    remove_stray_temporaries(out)
    staged: dict[str, str] = {}
    retired = out / f".{marker}.{os.getpid()}.old.tmp"
    renamed = False
    try:
        for name, data in files.items():
            staged[name] = _write_temporary(out / name, data)
        fault_point("commit")
        if (out / marker).exists():
            os.replace(out / marker, retired)  # from here until the new marker, the unit reads as incomplete
        for name in [n for n in files if n != marker] + [marker]:
            os.replace(staged[name], out / name)
            renamed = True
            del staged[name]
        _fsync_dir(out)
        if retired.exists():
            retired.unlink()
    except BaseException:
        if retired.exists() and not renamed:  # nothing of the new unit went in: the old one is whole again
            os.replace(retired, out / marker)
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def remove_stray_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete temporary files a killed writer left in ``directory``; returns how many."""
    root = Path(directory)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob(".*.tmp"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
