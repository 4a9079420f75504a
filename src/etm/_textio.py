"""Decoding input text: errors name the file and line, or undecodable bytes are replaced and counted.

One undecodable byte in one file of a folder corpus should not force a
different ``--encoding`` on every file. ``encoding_errors`` takes Python's
``errors=`` policies; with any policy but "strict" the bytes that could not be
decoded are counted in a :class:`DecodeTally` (bytes, lines, files), so the
reader can say how much text was altered instead of altering it silently.
"""

from __future__ import annotations

import codecs
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Accepted values of ``encoding_errors`` (Python's ``errors=`` of ``bytes.decode``).
ENCODING_ERRORS = ("strict", "replace", "ignore", "backslashreplace")

#: What the documents readers suggest when a byte cannot be decoded.
DOCUMENT_HINT = "pass the right encoding (e.g. --encoding latin-1), or --encoding-errors replace to replace such bytes"

_GZIP_MAGIC = b"\x1f\x8b"
_OUTCOMES = {"replace": "were replaced by U+FFFD", "ignore": "were dropped",
             "backslashreplace": "were kept as \\xNN escapes"}


def check_encoding_errors(value: Any) -> str:
    """``value`` if it is one of :data:`ENCODING_ERRORS`; a ValueError listing them otherwise."""
    if value not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors={value!r} is not one of {', '.join(ENCODING_ERRORS)}")
    return value


@dataclass
class DecodeTally:
    """Undecodable bytes met while reading one input, and on how many lines of how many files.

    Attributes
    ----------
    errors : str
        The ``encoding_errors`` policy that was applied to them.
    bytes, lines : int
    files : set of str
        The files that held at least one undecodable byte.
    """

    errors: str = "strict"
    bytes: int = 0
    lines: int = 0
    files: set[str] = field(default_factory=set)

    def report(self) -> dict[str, int]:
        """Counts for a command's summary (``undecodable_bytes`` ...)."""
        return {"undecodable_bytes": self.bytes, "undecodable_lines": self.lines, "undecodable_files": len(self.files)}

    def warn(self, source: Any) -> None:
        """One warning per input read, when anything could not be decoded."""
        if self.bytes:
            logger.warning(
                "%s: %d undecodable byte(s) on %d line(s) of %d file(s) %s (--encoding-errors %s); many of them "
                "mean the --encoding is wrong", source, self.bytes, self.lines, len(self.files),
                _OUTCOMES.get(self.errors, "were altered"), self.errors,
            )


class _Pass:
    """One decoding call, seen by the counting error handlers: tally, and where the last error was."""

    def __init__(self, tally: DecodeTally, line: int, *, whole: bool) -> None:
        self.tally, self.line, self.whole, self.pos, self.last_line = tally, line, whole, 0, 0

    def count(self, err: UnicodeDecodeError) -> None:
        self.tally.bytes += err.end - err.start
        if self.whole:  # one buffer decoded at once (err.object holds its bytes): find the error's line
            self.line += err.object.count(b"\n", self.pos, err.start)
            self.pos = err.start
        if self.line != self.last_line:
            self.tally.lines += 1
            self.last_line = self.line


_current = threading.local()
_registered: set[str] = set()


def _counting_policy(errors: str) -> str:
    """Name of a codec error handler that applies ``errors`` and counts into the current :class:`_Pass`."""
    name = f"etm.counted.{errors}"
    if name not in _registered:
        apply = codecs.lookup_error(errors)

        def handler(err: UnicodeError) -> tuple[str, int]:
            state = getattr(_current, "state", None)
            if state is not None and isinstance(err, UnicodeDecodeError):
                state.count(err)
            return apply(err)

        codecs.register_error(name, handler)
        _registered.add(name)
    return name


def decode_text(
    raw: bytes, path: Path, encoding: str, *, errors: str = "strict", tally: DecodeTally | None = None,
    first_line: int = 1, hint: str = DOCUMENT_HINT,
) -> str:
    """Decode ``raw`` (from ``path``, starting on line ``first_line``); drops a byte-order mark on line 1.

    With ``errors="strict"`` an undecodable byte raises a UnicodeDecodeError
    whose reason names the file, the 1-based line and ``hint``; otherwise it
    is handled by the policy and counted in ``tally``.
    """
    before = tally.bytes if tally is not None else 0
    try:
        if errors == "strict":
            text = raw.decode(encoding)
        else:
            _current.state = _Pass(tally if tally is not None else DecodeTally(errors), first_line, whole=True)
            try:
                text = raw.decode(encoding, _counting_policy(check_encoding_errors(errors)))
            finally:
                _current.state = None
    except UnicodeDecodeError as err:
        line = first_line + raw.count(b"\n", 0, err.start)
        raise UnicodeDecodeError(err.encoding, err.object, err.start, err.end,
                                 f"{err.reason} in {path}, line {line}; {hint}") from None
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} for {path}") from None
    if tally is not None and tally.bytes > before:
        tally.files.add(str(path))
    return text[1:] if first_line == 1 and text.startswith("\ufeff") else text


def open_binary(path: Path) -> Any:
    """``path`` opened for reading bytes, through gzip when it is compressed (magic bytes or ``.gz``)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC or path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")


def stream_lines(
    path: Path, encoding: str, *, keep_ends: bool = False, errors: str = "strict", tally: DecodeTally | None = None,
) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) of a possibly gzipped file, never all at once.

    Lines end at ``\\n`` only and lose it and one ``\\r`` before it (as the
    whole-file readers split them), unless ``keep_ends``. Encodings whose
    newline is the byte ``\\n`` (UTF-8, Latin-1, ...) are decoded line by line,
    so an undecodable byte is reported (or counted) on its exact line; others
    (UTF-16, UTF-32) go through an incremental decoder, which reads ahead, so
    their line numbers are approximate.
    """
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} for {path}") from None
    tally = tally if tally is not None else DecodeTally(errors)
    fh = open_binary(path)
    try:
        if "\n".encode(info.name) == b"\n":
            for lineno, raw in enumerate(fh, start=1):
                line = decode_text(raw, path, info.name, errors=errors, tally=tally, first_line=lineno)
                yield lineno, line if keep_ends else _strip_end(line)
        else:
            yield from _stream_incremental(fh, path, info.name, keep_ends, errors, tally)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable file ({err})") from None
    finally:
        fh.close()


def _stream_incremental(
    fh: Any, path: Path, encoding: str, keep_ends: bool, errors: str, tally: DecodeTally
) -> Iterator[tuple[int, str]]:
    """:func:`stream_lines` for encodings whose newline is not the byte ``\\n`` (UTF-16, UTF-32)."""
    policy = "strict" if errors == "strict" else _counting_policy(check_encoding_errors(errors))
    lines = iter(io.TextIOWrapper(fh, encoding=encoding, errors=policy, newline=""))
    lineno = 0
    while True:
        before = tally.bytes
        _current.state = _Pass(tally, lineno + 1, whole=False)
        try:
            raw = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as err:
            raise UnicodeDecodeError(err.encoding, err.object, err.start, err.end,
                                     f"{err.reason} in {path}, near line {lineno + 1}; {DOCUMENT_HINT}") from None
        finally:
            _current.state = None
        lineno += 1
        if tally.bytes > before:
            tally.files.add(str(path))
        line = raw[1:] if lineno == 1 and raw.startswith("\ufeff") else raw
        yield lineno, line if keep_ends else _strip_end(line)


def _strip_end(line: str) -> str:
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line
