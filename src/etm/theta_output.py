"""Streaming topic proportions (theta) to disk, one chunk at a time.

``etm transform`` on a corpus larger than memory cannot build the whole
(n_documents, K) theta matrix before writing it, so :class:`ThetaWriter`
accepts rows chunk by chunk and keeps at most one chunk in memory. The rows go
to a temporary file beside the output, which is renamed into place only at
:meth:`ThetaWriter.close`: a crash or an exception part-way through leaves no
half-written output and never clobbers the previous one.

The format follows the file suffix (see :data:`SUPPORTED_SUFFIXES`):

* ``.csv`` / ``.tsv``: a header ``document,<topic names...>`` then one line per
  document, values written with ``f"{v:.6g}"`` and text fields quoted the CSV way;
* ``.npy``: a standard NumPy file of float32, shape (rows, K); document ids are
  not stored;
* ``.parquet`` (needs ``pyarrow``): a string id column plus one float32 column
  per topic.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

import numpy as np
from numpy.lib import format as npy_format

from etm._io import atomic_write_text, fix_mode

__all__ = ["SUPPORTED_SUFFIXES", "ThetaWriter", "LABEL_SUFFIXES", "check_label_output", "write_labels"]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".npy", ".parquet")

#: Formats of :func:`write_labels`, by file suffix.
LABEL_SUFFIXES = (".csv", ".tsv", ".json")

_COPY_BLOCK = 16 * 1024 * 1024  # bytes per block when the .npy data has to be copied
_NPY_DTYPE = np.dtype("<f4")  # explicit little-endian so the file reads the same on every machine


def _csv_field(value: str, sep: str) -> str:
    """Quote ``value`` the CSV way when it holds the separator, a quote or a line break.

    A bare carriage return is quoted too: CSV readers treat it as a line end.
    """
    if sep in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _npy_header(rows: int, k: int) -> bytes:
    """The .npy version 1.0 header for a C-order float32 (rows, k) array.

    NumPy pads the header so that its length does not depend on the number of
    digits of the first dimension; that lets :meth:`ThetaWriter.close` rewrite
    it in place once the row count is known.
    """
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": npy_format.dtype_to_descr(_NPY_DTYPE), "fortran_order": False, "shape": (rows, k)}
    )
    return buf.getvalue()


class ThetaWriter:
    """Context manager. Rows arrive in chunks; the output file appears atomically at close().

    ``write(theta, ids)`` appends a (n, K) chunk; ``ids`` are the n document
    names, or None for running 0-based row numbers (continuing across chunks).
    Values are stored as float32. A ``.npy`` output holds the numbers only, so
    ``ids`` are ignored for it. ``rows_written`` counts the rows so far.

    Leaving a ``with`` block normally calls :meth:`close`; leaving it with an
    exception calls :meth:`abort`, which deletes the temporary file and leaves
    any earlier output untouched.

    Opening the writer creates the output's directory when missing and the
    temporary file in it, so an output that cannot be written fails there,
    before any rows are computed. Errors name ``path``, never the temporary
    file; file-system errors keep their type (``PermissionError``,
    ``NotADirectoryError``, ...) and ``errno``.
    """

    rows_written: int

    def __init__(
        self, path: str | os.PathLike[str], column_names: Sequence[str], *, id_header: str = "document"
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise ValueError(
                f"cannot write topic proportions to {self.path}: unsupported suffix {self.path.suffix!r}; "
                f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
            )
        if isinstance(column_names, str):
            raise TypeError("column_names must be a sequence of names, not a single string")
        if self.path.is_dir():
            raise IsADirectoryError(f"cannot write topic proportions to {self.path}: it is a directory")
        self.column_names = [str(name) for name in column_names]
        self.id_header = str(id_header)
        self.rows_written = 0
        self._suffix = suffix
        self._state = "open"  # "open" -> "closed" | "aborted"
        self._tmp: Path | None = None
        self._fh: IO[Any] | None = None
        self._pq_writer: Any = None
        self._pa: Any = None
        self._schema: Any = None

        if suffix == ".parquet":
            # Import first and check names before any file exists, so a failure leaves nothing behind.
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as err:
                raise ImportError("writing .parquet needs pyarrow: pip install pyarrow") from err
            seen: set[str] = set()
            for name in [self.id_header, *self.column_names]:
                if name in seen:
                    raise ValueError(
                        f"cannot write {self.path}: column name {name!r} appears twice "
                        f"(with the id column {self.id_header!r}); Parquet needs unique column names"
                    )
                seen.add(name)
            self._pa = pa
            self._schema = pa.schema(
                [pa.field(self.id_header, pa.string())] + [pa.field(name, pa.float32()) for name in self.column_names]
            )

        self._make_directory()
        try:  # creating the temporary file is the writability check: it happens here, before any rows come
            if suffix in (".csv", ".tsv"):
                self._sep = "," if suffix == ".csv" else "\t"
                self._fh = self._temp_file("w", encoding="utf-8", newline="")
                header = [self.id_header, *self.column_names]
                self._fh.write(self._sep.join(_csv_field(name, self._sep) for name in header) + "\n")
            elif suffix == ".npy":
                self._fh = self._temp_file("w+b")
                self._npy_header_len = len(_npy_header(0, self.n_columns))
                self._fh.write(_npy_header(0, self.n_columns))  # placeholder; the real shape is written at close
            else:
                self._temp_file("wb").close()  # reserve a unique name; pyarrow opens the file itself
                assert self._tmp is not None
                self._pq_writer = pq.ParquetWriter(str(self._tmp), self._schema)
        except BaseException as err:
            self._fail(err)

    # ------------------------------------------------------------------ #
    @property
    def n_columns(self) -> int:
        """K, the number of topic columns each chunk must have."""
        return len(self.column_names)

    def _make_directory(self) -> None:
        """Create the output's directory if needed; errors name the output, not the directory alone."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            # a file stands where a directory on the way to the output should be
            blocker = next((p for p in [*reversed(directory.parents), directory] if p.exists() and not p.is_dir()),
                           directory)
            error = NotADirectoryError(
                f"cannot write topic proportions to {self.path}: {blocker} is a file, not a directory; "
                "choose another output path"
            )
            error.errno = errno.ENOTDIR
            raise error from None
        except OSError as err:
            raise self._restated(err, f"cannot create its directory {directory}") from None

    def _restated(self, err: OSError, problem: str | None = None) -> OSError:
        """``err`` (same type and errno) with a message that names the output, never the temporary file."""
        reason = err.strerror or str(err)
        if self._tmp is not None:
            reason = reason.replace(str(self._tmp), str(self.path))
        hint = ""
        if problem is None and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            problem, hint = f"its directory {self.path.parent} is not writable", "; choose another output path"
        detail = f"{problem} ({reason})" if problem else reason
        new = (type(err) if type(err).__module__ == "builtins" else OSError)(
            f"cannot write topic proportions to {self.path}: {detail}{hint}"
        )
        new.errno = err.errno
        return new

    def _fail(self, err: BaseException) -> NoReturn:
        """Abort (the temporary file goes) and re-raise ``err``, an OSError restated to name the output."""
        restated = self._restated(err) if isinstance(err, OSError) else None
        self.abort()
        if restated is not None:
            raise restated from None
        raise err

    def _temp_file(self, mode: str, **kwargs: Any) -> IO[Any]:
        """A temporary file beside the output, so the final os.replace is a same-filesystem rename."""
        fh = tempfile.NamedTemporaryFile(  # stays open across write() calls
            mode, dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp", delete=False, **kwargs
        )
        self._tmp = Path(fh.name)
        return fh

    def _check_open(self, action: str) -> None:
        if self._state != "open":
            raise ValueError(f"cannot {action} {self.path}: the writer is already {self._state}")

    # ------------------------------------------------------------------ #
    def write(self, theta: np.ndarray, ids: Sequence[str] | None = None) -> None:
        """Append the rows of ``theta`` (n, K); ``ids`` names them (ignored for .npy).

        Everything is checked before anything is written, so a rejected chunk
        leaves the writer usable; a failure while writing aborts the writer.
        """
        self._check_open("write to")
        arr = np.asarray(theta)
        if arr.ndim != 2:
            raise ValueError(f"theta must be a 2-D array (documents x topics), got shape {arr.shape}")
        if arr.shape[1] != self.n_columns:
            raise ValueError(
                f"theta has {arr.shape[1]} columns but {self.n_columns} column names were given for {self.path}"
            )
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"theta must hold real numbers, got dtype {arr.dtype}")
        n = arr.shape[0]
        if ids is not None:
            if isinstance(ids, str):
                raise TypeError("ids must be a sequence of document names, not a single string")
            if len(ids) != n:
                raise ValueError(f"got {len(ids)} ids for {n} rows of theta")
        if n == 0:
            return
        values = arr.astype(np.float32, copy=False)
        try:
            if self._suffix == ".npy":
                assert self._fh is not None
                self._fh.write(memoryview(np.ascontiguousarray(values, dtype=_NPY_DTYPE)).cast("B"))
            else:
                names = [str(i) for i in ids] if ids is not None else [str(self.rows_written + i) for i in range(n)]
                if self._suffix == ".parquet":
                    self._write_parquet(values, names)
                else:
                    self._write_text(values, names)
        except BaseException as err:
            self._fail(err)
        self.rows_written += n

    def _write_text(self, values: np.ndarray, names: list[str]) -> None:
        assert self._fh is not None
        sep = self._sep
        lines = [
            sep.join([_csv_field(name, sep), *(f"{v:.6g}" for v in row)]) + "\n"
            for name, row in zip(names, values.tolist())
        ]
        self._fh.write("".join(lines))

    def _write_parquet(self, values: np.ndarray, names: list[str]) -> None:
        pa = self._pa
        columns = np.ascontiguousarray(values.T)  # one contiguous float32 vector per topic
        arrays = [pa.array(names, type=pa.string())] + [pa.array(col, type=pa.float32()) for col in columns]
        self._pq_writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))

    # ------------------------------------------------------------------ #
    def close(self) -> Path:
        """Finish the file and rename it into place; returns the output path.

        Calling it again after a successful close just returns the path.
        """
        if self._state == "closed":
            return self.path
        self._check_open("close")
        assert self._tmp is not None
        try:
            if self._suffix == ".parquet":
                self._pq_writer.close()
                self._pq_writer = None
                with open(self._tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            elif self._suffix == ".npy":
                self._finish_npy()
            else:
                assert self._fh is not None
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
            fix_mode(self._tmp)  # created 0600; the output gets what the umask gives
            os.replace(self._tmp, self.path)
        except BaseException as err:
            self._fail(err)
        self._tmp = None
        self._state = "closed"
        return self.path

    def _finish_npy(self) -> None:
        """Put the final shape into the header, in place when its length allows, else by a bounded copy."""
        assert self._fh is not None and self._tmp is not None
        header = _npy_header(self.rows_written, self.n_columns)
        fh = self._fh
        if len(header) == self._npy_header_len:
            fh.seek(0)
            fh.write(header)
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            self._fh = None
            return
        # A NumPy without growth padding in its header: copy the data after a new header, block by block.
        data_tmp = self._tmp
        fh.flush()
        fh.seek(self._npy_header_len)
        out = self._temp_file("wb")  # sets self._tmp to the new file
        try:
            out.write(header)
            shutil.copyfileobj(fh, out, _COPY_BLOCK)
            out.flush()
            os.fsync(out.fileno())
        finally:
            out.close()
            fh.close()
            self._fh = None
            data_tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Delete the temporary file; the output path, and whatever was there before, stay untouched."""
        if self._state == "closed":
            return
        self._state = "aborted"
        if self._pq_writer is not None:
            try:
                self._pq_writer.close()
            except Exception:  # the file is being thrown away; its writer's state does not matter
                pass
            self._pq_writer = None
        if self._fh is not None:
            try:
                self._fh.close()
            except Exception:  # e.g. a full disk failing the final flush
                pass
            self._fh = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    # ------------------------------------------------------------------ #
    def __enter__(self) -> ThetaWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"ThetaWriter({str(self.path)!r}, K={self.n_columns}, rows_written={self.rows_written}, {self._state})"


# --------------------------------------------------------------------------- #
# Labels (`etm label`): one row per document, written whole
# --------------------------------------------------------------------------- #
def check_label_output(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path when :func:`write_labels` can write its format; checked before any inference."""
    out = Path(path)
    if out.suffix.lower() not in LABEL_SUFFIXES:
        raise ValueError(f"unsupported output {out}: use a .csv, .tsv or .json file name")
    return out


def write_labels(
    path: str | os.PathLike[str],
    documents: Sequence[str],
    labels: Sequence[str],
    proportion: np.ndarray,
    theta: np.ndarray,
    names: Sequence[str],
    *,
    splits: Sequence[str] | None = None,
) -> Path:
    """Write each document's label atomically: ``document[, split], label, proportion`` and one column per name.

    Parameters
    ----------
    documents, labels : sequences of str of length D
    proportion : ndarray of shape (D,)
        The label's topic proportion (0 for a document labelled "none" for want of any vocabulary word).
    theta : ndarray of shape (D, len(names))
        Proportions of the named topics.
    splits : sequence of str of length D, optional
        train / valid / test of each document of a corpus directory; adds a ``split`` column (key in JSON).
    """
    out = check_label_output(path)
    if out.suffix.lower() == ".json":
        records = [{"document": d, **({"split": splits[i]} if splits is not None else {}), "label": lab,
                    "proportion": round(float(p), 6),
                    "proportions": {name: round(float(v), 6) for name, v in zip(names, row)}}
                   for i, (d, lab, p, row) in enumerate(zip(documents, labels, proportion, theta))]
        atomic_write_text(out, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
        return out
    sep = "," if out.suffix.lower() == ".csv" else "\t"
    head = ["document", *(["split"] if splits is not None else []), "label", "proportion", *names]
    rows = [sep.join(_csv_field(str(v), sep) for v in head)]
    for i, (d, lab, p, row) in enumerate(zip(documents, labels, proportion, theta)):
        first = [str(d), *([splits[i]] if splits is not None else []), str(lab)]
        rows.append(sep.join([*(_csv_field(v, sep) for v in first), f"{p:.6g}", *(f"{v:.6g}" for v in row)]))
    atomic_write_text(out, "\n".join(rows) + "\n")
    return out
