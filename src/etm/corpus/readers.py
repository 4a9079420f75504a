"""Reading documents from disk: raw texts in common formats, and already-prepared corpora.

Raw readers (:func:`read_text_lines`, :func:`read_jsonl`, :func:`read_csv`,
:func:`read_folder`, all behind :func:`read_documents`) return
:class:`RawDocuments`; :func:`prepare_corpus` turns those into a
:class:`~etm.corpus.PreparedCorpus` with a :class:`~etm.preprocessing.Preprocessor`.
:func:`read_authors_format` and :func:`read_octis` read corpora that were
preprocessed elsewhere (the ETM authors' ``.mat`` files, OCTIS datasets); they
live in :mod:`etm.corpus.formats` and are re-exported here.

Every reader names the file and the 1-based line of bad input, so a problem in
a million-line file can be found with an editor.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from etm._io import _check_file, _lines, _normalise_split, _read_text
from etm._textio import ENCODING_ERRORS, DecodeTally, check_encoding_errors, decode_text, stream_lines
from etm.corpus.formats import read_authors_format, read_octis
from etm.corpus.memory import Corpus, PreparedCorpus
from etm.preprocessing import Preprocessor

logger = logging.getLogger("etm.readers")  # the name logs print and users filter on (kept from before the move)

__all__ = [
    "RawDocuments",
    "FORMATS",
    "read_documents",
    "read_text_lines",
    "read_jsonl",
    "read_csv",
    "read_folder",
    "read_authors_format",
    "read_octis",
    "prepare_corpus",
    "RawRecord",
    "iter_documents",
    "ENCODING_ERRORS",
    "draw_split",
    "drawn_from_train",
    "prepare_settings",
    "prepare_report",
]

#: Accepted values of ``read_documents(format=...)``.
FORMATS = ("auto", "text", "jsonl", "csv", "tsv", "folder")


# --------------------------------------------------------------------------- #
# RawDocuments
# --------------------------------------------------------------------------- #
@dataclass
class RawDocuments:
    """Texts as read from disk, before any tokenising.

    Parameters
    ----------
    texts : list of str of length D
    labels : list of str of length D, optional
        A class per document, kept for evaluation (never used for training).
    doc_ids : list of str of length D, optional
        Where each document came from (``"line 12"``, a file path, an id field),
        so results and dropped documents can be traced back.
    splits : list of str of length D, optional
        ``"train"``, ``"valid"`` or ``"test"`` per document, when the source fixes
        the split; ``"validation"``, ``"val"`` and ``"dev"`` are stored as ``"valid"``.
    source : str
        Where the documents were read from, recorded in the corpus settings.
    undecodable_bytes : int
        Bytes that could not be decoded and were replaced, dropped or escaped
        (``encoding_errors``); 0 when reading was strict.
    """

    texts: list[str]
    labels: list[str] | None = None
    doc_ids: list[str] | None = None
    splits: list[str] | None = None
    source: str = ""
    undecodable_bytes: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.texts, str):
            raise TypeError("RawDocuments.texts must be a list of str, got a single str; wrap it in a list")
        self.texts = list(self.texts)
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TypeError(f"RawDocuments.texts[{i}] is a {type(text).__name__}, expected str")
        n = len(self.texts)
        for name in ("labels", "doc_ids", "splits"):
            values = getattr(self, name)
            if values is None:
                continue
            values = [str(v) for v in values]
            if len(values) != n:
                raise ValueError(f"RawDocuments.{name} has {len(values)} entries but there are {n} texts")
            setattr(self, name, values)
        if self.splits is not None:
            where = self.source or "RawDocuments"
            self.splits = [_normalise_split(s, f"{where}, document {i}") for i, s in enumerate(self.splits)]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class RawRecord:
    """One document as :func:`iter_documents` yields it."""

    text: str
    label: str | None
    split: str | None
    doc_id: str


# --------------------------------------------------------------------------- #
# Low-level helpers
# --------------------------------------------------------------------------- #
def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


# --------------------------------------------------------------------------- #
# Raw readers
# --------------------------------------------------------------------------- #
def read_text_lines(
    path: str | os.PathLike[str], *, encoding: str = "utf-8", encoding_errors: str = "strict"
) -> RawDocuments:
    """One document per line.

    Blank lines are kept as empty documents so that document ``i`` is always
    line ``i + 1`` of the file; :func:`prepare_corpus` drops and counts them.

    Parameters
    ----------
    path : path-like
        A text file, optionally gzip-compressed.
    encoding : str, default="utf-8"
    encoding_errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        What to do with undecodable bytes (Python's ``errors=``): "strict"
        raises naming the file and line; the others are counted and logged.

    Returns
    -------
    RawDocuments
        ``doc_ids`` are ``"line N"`` (1-based); no labels or splits.
    """
    tally = DecodeTally(check_encoding_errors(encoding_errors))
    p, text = _read_text(path, encoding, encoding_errors, tally)
    lines = _lines(text)
    if not any(line.strip() for line in lines):
        raise ValueError(f"{p} has no documents: every line is blank")
    logger.info("read %d documents (one per line) from %s", len(lines), p)
    tally.warn(p)
    return RawDocuments(
        texts=lines,
        doc_ids=[f"line {i}" for i in range(1, len(lines) + 1)],
        source=str(p),
        undecodable_bytes=tally.bytes,
    )


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    text_field: str = "text",
    label_field: str | None = None,
    split_field: str | None = None,
    id_field: str | None = None,
    encoding: str = "utf-8",
    encoding_errors: str = "strict",
) -> RawDocuments:
    """One JSON object per line (``.jsonl``, or gzip-compressed ``.jsonl.gz``).

    Parameters
    ----------
    path : path-like
    text_field : str, default="text"
        Key holding the document text.
    label_field, split_field, id_field : str, optional
        Keys holding a label, a split (train/valid/test) and an identifier.
        Without ``id_field``, ids are ``"line N"``.
    encoding : str, default="utf-8"
    encoding_errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        What to do with undecodable bytes (Python's ``errors=``): "strict"
        raises naming the file and line; the others are counted and logged.

    Returns
    -------
    RawDocuments

    Raises
    ------
    ValueError
        A line that is not a JSON object (naming file and 1-based line), or a
        record without a requested field (listing the fields it has).
    """
    tally = DecodeTally(check_encoding_errors(encoding_errors))
    p, text = _read_text(path, encoding, encoding_errors, tally)
    records = list(_jsonl_records(p, enumerate(_lines(text), start=1), text_field, label_field, split_field,
                                  id_field))
    if not records:
        raise ValueError(f"{p} has no documents: every line is blank")
    logger.info("read %d documents from %s", len(records), p)
    return _collect(records, p, labels=label_field is not None, splits=split_field is not None, tally=tally)


def _jsonl_records(
    p: Path, lines: Iterable[tuple[int, str]], text_field: str, label_field: str | None, split_field: str | None,
    id_field: str | None,
) -> Iterator[RawRecord]:
    """Parse JSON lines given as (1-based line number, line); blank lines are skipped."""
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{p}, line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({_json_problem(err)})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object per line, got a {type(record).__name__}")
        yield RawRecord(
            _get_text(record, text_field, where, "field"),
            None if label_field is None else str(_get_field(record, label_field, where, "field")),
            None if split_field is None else _normalise_split(_get_field(record, split_field, where, "field"), where),
            str(_get_field(record, id_field, where, "field")) if id_field is not None else f"line {lineno}",
        )


def _json_problem(err: json.JSONDecodeError) -> str:
    """The parser's message with its column; some messages already end in "at" ("Unterminated string starting at")."""
    message = err.msg[: -len(" at")] if err.msg.endswith(" at") else err.msg
    return f"{message} at column {err.colno}"


def _collect(records: list[RawRecord], p: Path, *, labels: bool, splits: bool, tally: DecodeTally) -> RawDocuments:
    """Records of one file (or folder) as :class:`RawDocuments`; warns once about undecodable bytes."""
    tally.warn(p)
    return RawDocuments(
        texts=[r.text for r in records],
        labels=[r.label for r in records] if labels else None,  # type: ignore[misc]
        doc_ids=[r.doc_id for r in records],
        splits=[r.split for r in records] if splits else None,  # type: ignore[misc]
        source=str(p),
        undecodable_bytes=tally.bytes,
    )


def _get_field(record: dict[str, Any], name: str, where: str, kind: str) -> Any:
    if name not in record:
        existing = ", ".join(repr(k) for k in record) or "none"
        raise ValueError(f"{where}: no {kind} {name!r}; the {kind}s are: {existing}")
    return record[name]


def _get_text(record: dict[str, Any], name: str, where: str, kind: str) -> str:
    value = _get_field(record, name, where, kind)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}: {kind} {name!r} should hold text, got a {type(value).__name__}")
    return value


def read_csv(
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    encoding_errors: str = "strict",
) -> RawDocuments:
    """A delimited file with a header row, one document per record.

    Read with the standard :mod:`csv` module, so quoted fields may hold
    delimiters and line breaks.

    Parameters
    ----------
    path : path-like
        ``.csv``/``.tsv``, optionally gzip-compressed.
    text_column : str, default="text"
    label_column, split_column, id_column : str, optional
        Without ``id_column``, ids are ``"line N"``, the line a record starts on.
    delimiter : str, optional
        Default: tab for ``.tsv`` files, comma otherwise.
    encoding : str, default="utf-8"
    encoding_errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        What to do with undecodable bytes (Python's ``errors=``): "strict"
        raises naming the file and line; the others are counted and logged.

    Returns
    -------
    RawDocuments

    Raises
    ------
    ValueError
        A requested column that is not in the header (listing the columns that
        are), or a record with a different number of fields than the header.
    """
    tally = DecodeTally(check_encoding_errors(encoding_errors))
    p, text = _read_text(path, encoding, encoding_errors, tally)
    if delimiter is None:
        delimiter = "\t" if _strip_gz(p.name).lower().endswith(".tsv") else ","
    records = list(_csv_records(p, io.StringIO(text, newline=""), delimiter, text_column, label_column,
                                split_column, id_column))
    logger.info("read %d documents from %s", len(records), p)
    return _collect(records, p, labels=label_column is not None, splits=split_column is not None, tally=tally)


def _csv_records(
    p: Path, lines: Iterable[str], delimiter: str, text_column: str, label_column: str | None,
    split_column: str | None, id_column: str | None,
) -> Iterator[RawRecord]:
    """Records of a delimited file with a header row, from its lines (line ends kept, for quoted breaks)."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long document is not an error
    try:
        rows = _csv_rows(lines, delimiter, p)
        header_line, header = next(rows, (0, None))
        if header is None:
            raise ValueError(f"{p} has no header row")
        header = [h.strip() for h in header]
        existing = ", ".join(repr(h) for h in header)

        def column(name: str | None) -> int | None:
            if name is None:
                return None
            if name not in header:
                raise ValueError(f"{p}: no column {name!r}; the columns are: {existing}")
            return header.index(name)

        i_text, i_label, i_split, i_id = (column(c) for c in (text_column, label_column, split_column, id_column))
        n = 0
        for lineno, row in rows:
            where = f"{p}, line {lineno}"
            if len(row) != len(header):
                raise ValueError(f"{where}: {len(row)} fields but the header has {len(header)} ({existing})")
            n += 1
            yield RawRecord(
                row[i_text],  # type: ignore[index]
                None if i_label is None else row[i_label],
                None if i_split is None else _normalise_split(row[i_split], where),
                row[i_id] if i_id is not None else f"line {lineno}",
            )
        if n == 0:
            raise ValueError(f"{p} has no documents: only a header row (line {header_line})")
    finally:
        csv.field_size_limit(old_limit)


def _csv_rows(lines: Iterable[str], delimiter: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Non-empty records with the 1-based line each starts on."""
    reader = csv.reader(lines, delimiter=delimiter)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise ValueError(f"{path}, line {reader.line_num}: malformed record ({err})") from None
        if row:
            yield start, row
        start = reader.line_num + 1


def read_folder(
    path: str | os.PathLike[str], *, encoding: str = "utf-8", encoding_errors: str = "strict"
) -> RawDocuments:
    """A folder with one sub-folder per label, each holding one text file per document.

    Files may have any name (20 Newsgroups files are numbers); hidden files
    and folders (starting with ``.``) are skipped. A folder holding only files
    and no sub-folders gives unlabelled documents.

    Parameters
    ----------
    path : path-like
    encoding : str, default="utf-8"
    encoding_errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        What to do with undecodable bytes (Python's ``errors=``): "strict"
        raises naming the file and line; the others are counted and logged.

    Returns
    -------
    RawDocuments
        ``labels`` are the sub-folder names and ``doc_ids`` the paths relative
        to ``path``, in sorted order.
    """
    root = Path(path)
    files, n_labels = _folder_files(root)
    tally = DecodeTally(check_encoding_errors(encoding_errors))
    records = list(_folder_records(root, files, encoding, encoding_errors, tally))
    logger.info("read %d documents from %s (%d labels)", len(records), root, n_labels)
    return _collect(records, root, labels=n_labels > 0, splits=False, tally=tally)


def _folder_files(root: Path) -> tuple[list[tuple[Path, str | None]], int]:
    """Document files of a folder with their labels (sub-folder names), and the number of labels."""
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    entries = sorted(e for e in root.iterdir() if not e.name.startswith("."))
    subdirs = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if e.is_file()]
    files: list[tuple[Path, str | None]] = []
    if subdirs:
        if loose:
            logger.warning(
                "%s: skipping %d file(s) outside the label sub-folders (e.g. %s)", root, len(loose), loose[0].name
            )
        for sub in subdirs:
            files.extend((f, sub.name) for f in _visible_files(sub))
    else:
        files = [(f, None) for f in loose]
    if not files:
        raise ValueError(f"{root} has no documents: expected text files inside one sub-folder per label")
    return files, len(subdirs)


def _folder_records(
    root: Path, files: list[tuple[Path, str | None]], encoding: str, errors: str, tally: DecodeTally
) -> Iterator[RawRecord]:
    for f, label in files:
        raw = f.read_bytes()
        text = decode_text(raw, f, encoding, errors=errors, tally=tally) if raw else ""
        yield RawRecord(text, label, None, f.relative_to(root).as_posix())


def _visible_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / name for name in sorted(filenames) if not name.startswith("."))
    return found


def _guess_format(path: Path) -> str:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        if (path / "vocab.pkl").exists() and (path / "bow_tr_tokens.mat").exists():
            raise ValueError(
                f"{path} holds a corpus in the ETM authors' format (vocab.pkl, bow_*.mat); "
                f"it is already preprocessed: read it with read_authors_format"
            )
        if (path / "corpus.tsv").exists() and (path / "vocabulary.txt").exists():
            raise ValueError(f"{path} holds an OCTIS dataset (corpus.tsv, vocabulary.txt); read it with read_octis")
        return "folder"
    name = path.name.lower()
    if name.endswith(".json.gz"):  # compressed JSON is in practice JSON lines (e.g. 20news-bydate.jsonl.gz)
        return "jsonl"
    by_suffix = {".txt": "text", ".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}
    fmt = by_suffix.get(Path(_strip_gz(name)).suffix)
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path} from its name; pass format= one of "
            f"{', '.join(f for f in FORMATS if f != 'auto')} "
            f"(known suffixes: .txt, .jsonl, .jsonl.gz, .json.gz, .csv, .tsv, optionally .gz)"
        )
    return fmt


def read_documents(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    encoding: str = "utf-8",
    text_field: str = "text",
    label_field: str | None = None,
    split_field: str | None = None,
    id_field: str | None = None,
    encoding_errors: str = "strict",
) -> RawDocuments:
    """Read raw documents in any supported format.

    Parameters
    ----------
    path : path-like
    format : {"auto", "text", "jsonl", "csv", "tsv", "folder"}, default="auto"
        ``"auto"`` decides from the name: ``.txt`` text lines; ``.jsonl``,
        ``.jsonl.gz``, ``.json.gz`` JSON lines; ``.csv``; ``.tsv``; a directory
        is a folder of label sub-folders.
    encoding : str, default="utf-8"
    encoding_errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        What to do with undecodable bytes (Python's ``errors=``): "strict"
        raises naming the file and line; the others are counted and logged.
    text_field, label_field, split_field, id_field : str
        Field (JSON lines) or column (CSV/TSV) names; the text and folder
        formats have no fields, so only the defaults are accepted there.

    Returns
    -------
    RawDocuments
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    p = Path(path)
    fmt = _guess_format(p) if format == "auto" else format
    if fmt in ("text", "folder"):
        given = {
            name: value
            for name, value, default in (
                ("text_field", text_field, "text"),
                ("label_field", label_field, None),
                ("split_field", split_field, None),
                ("id_field", id_field, None),
            )
            if value != default
        }
        if given:
            raise ValueError(f"format {fmt!r} has no fields, but {given} was given; use jsonl, csv or tsv for fields")
        reader = read_text_lines if fmt == "text" else read_folder
        return reader(p, encoding=encoding, encoding_errors=encoding_errors)
    if fmt == "jsonl":
        return read_jsonl(
            p,
            text_field=text_field,
            label_field=label_field,
            split_field=split_field,
            id_field=id_field,
            encoding=encoding,
            encoding_errors=encoding_errors,
        )
    return read_csv(
        p,
        text_column=text_field,
        label_column=label_field,
        split_column=split_field,
        id_column=id_field,
        delimiter="\t" if fmt == "tsv" else ",",
        encoding=encoding,
        encoding_errors=encoding_errors,
    )


# --------------------------------------------------------------------------- #
# Streaming: one document at a time, for inputs larger than memory
# --------------------------------------------------------------------------- #
def iter_documents(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    encoding: str = "utf-8",
    text_field: str = "text",
    label_field: str | None = None,
    split_field: str | None = None,
    id_field: str | None = None,
    encoding_errors: str = "strict",
    tally: DecodeTally | None = None,
) -> Iterator[RawRecord]:
    """Stream the documents :func:`read_documents` would return, one :class:`RawRecord` at a time.

    Memory does not grow with the file: this is what ``etm prepare
    --shard-size`` and ``etm transform`` read larger-than-memory inputs with.
    Blank lines of text files are yielded as empty documents (so ids stay
    line numbers); blank JSON lines are skipped, as :func:`read_jsonl` does.
    Errors name the file and line, as the whole-file readers do.

    Undecodable bytes handled by ``encoding_errors`` are counted into
    ``tally`` when one is given (the caller reports them); otherwise a warning
    is logged once the input has been read through.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    check_encoding_errors(encoding_errors)
    p = Path(path)
    fmt = _guess_format(p) if format == "auto" else format
    if fmt in ("text", "folder") and (text_field, label_field, split_field, id_field) != ("text", None, None, None):
        raise ValueError(f"format {fmt!r} has no fields; use jsonl, csv or tsv for fields")
    own = DecodeTally(encoding_errors) if tally is None else tally
    if fmt == "folder":
        yield from _folder_records(p, _folder_files(p)[0], encoding, encoding_errors, own)
    else:
        _check_file(p)
        lines = stream_lines(p, encoding, keep_ends=fmt not in ("text", "jsonl"), errors=encoding_errors, tally=own)
        if fmt == "text":
            yield from (RawRecord(line, None, None, f"line {lineno}") for lineno, line in lines)
        elif fmt == "jsonl":
            yield from _jsonl_records(p, lines, text_field, label_field, split_field, id_field)
        else:
            yield from _csv_records(p, (line for _, line in lines), "\t" if fmt == "tsv" else ",", text_field,
                                    label_field, split_field, id_field)
    if tally is None:
        own.warn(p)


# --------------------------------------------------------------------------- #
# Raw documents -> PreparedCorpus
# --------------------------------------------------------------------------- #
def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)


#: The parts a document can belong to, in the order of their codes (0, 1, 2) in a sharded prepare.
SPLITS = ("train", "valid", "test")


def draw_split(u: float, valid_size: float, test_size: float) -> int:
    """The part (0 train, 1 valid, 2 test) a uniform draw ``u`` in [0, 1) puts a document in.

    The streaming prepare draws each document's part this way, as it reads
    it; with a given split field, the same draw decides whether a training
    document is taken into a missing valid / test part (:func:`drawn_from_train`).
    """
    return 1 if u < valid_size else 2 if u < valid_size + test_size else 0


def drawn_from_train(n_given: int, size: float) -> bool:
    """Whether a valid / test part the input's split field left with ``n_given`` documents is drawn from train.

    Both prepare pipelines follow this rule: an empty part whose requested
    ``size`` is above 0 is taken from the training documents.
    """
    return n_given == 0 and size > 0


def _assign_splits(
    raw: RawDocuments, valid_size: float, test_size: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int], str]:
    """Document indices of each split, how many were carved out of train, and where the split came from."""
    n = len(raw.texts)
    carved: dict[str, int] = {}
    if raw.splits is None:
        if valid_size + test_size >= 1.0:
            raise ValueError(f"valid_size + test_size must be below 1, got {valid_size + test_size}")
        order = rng.permutation(n)
        n_valid = int(round(valid_size * n))
        n_test = int(round(test_size * n))
        idx = {
            "valid": np.sort(order[:n_valid]),
            "test": np.sort(order[n_valid : n_valid + n_test]),
            "train": np.sort(order[n_valid + n_test :]),
        }
        return idx, carved, "random"
    splits = np.asarray(raw.splits, dtype=object)
    idx = {name: np.flatnonzero(splits == name) for name in ("train", "valid", "test")}
    for name, size in (("valid", valid_size), ("test", test_size)):
        if not drawn_from_train(idx[name].size, size):
            continue
        train = idx["train"]
        n_take = int(round(size * train.size))
        if n_take == 0:
            continue
        take = np.sort(rng.choice(train, size=n_take, replace=False))
        idx[name] = take
        idx["train"] = np.setdiff1d(train, take, assume_unique=True)
        carved[name] = n_take
        logger.info(
            "no %s documents in %s; took %d (%.0f%%) of the training documents", name, raw.source, n_take, 100 * size
        )
    return idx, carved, "given"


def _count_parts(
    raw: RawDocuments, preprocessor: Preprocessor, idx: dict[str, np.ndarray], train_texts: list[str]
) -> tuple[dict[str, Corpus | None], dict[str, int], dict[str, int]]:
    """Each part counted over the fitted vocabulary, empty documents dropped; (parts, dropped, unknown tokens)."""
    parts: dict[str, Corpus | None] = {}
    dropped: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for name in SPLITS:
        rows = idx[name]
        if rows.size == 0:
            parts[name], dropped[name], unknown[name] = None, 0, 0
            continue
        part_texts = train_texts if name == "train" else [raw.texts[i] for i in rows]
        counts, unknown[name] = preprocessor.transform_with_report(part_texts)
        corpus = Corpus(
            counts,
            preprocessor.vocabulary_,
            labels=None if raw.labels is None else [raw.labels[i] for i in rows],
            doc_ids=None if raw.doc_ids is None else [raw.doc_ids[i] for i in rows],
        )
        part, dropped[name] = corpus.drop_empty()
        if dropped[name]:
            logger.info("dropped %d of %d %s documents left empty by preprocessing", dropped[name], rows.size, name)
        parts[name] = part if part.n_docs else None
    return parts, dropped, unknown


def prepare_settings(
    preprocessor: Preprocessor, source: str, split_from: str, valid_size: float, test_size: float,
    random_state: int | None, dropped: dict[str, int], **extra: Any,
) -> dict[str, Any]:
    """The ``settings`` a prepared corpus records in ``meta.json`` (both prepare pipelines; ``extra`` goes last)."""
    return {
        "preprocessing": preprocessor.settings(),
        "source": source,
        "split_from": split_from,
        "valid_size": valid_size,
        "test_size": test_size,
        "random_state": random_state,
        "dropped_empty": dropped,
        **extra,
    }


def prepare_report(
    documents_read: int, split_from: str, carved: dict[str, int], per_split: dict[str, int],
    dropped: dict[str, int], unknown: dict[str, int], vocabulary_size: int, undecodable_bytes: int,
    summary: dict[str, Any], **extra: Any,
) -> dict[str, Any]:
    """The report both prepare pipelines return (``extra``, e.g. ``vocabulary_prunes``, before the byte count)."""
    return {
        "documents_read": documents_read,
        "split_from": split_from,
        "carved_from_train": carved,
        "documents_per_split": per_split,
        "dropped_empty": dropped,
        "unknown_tokens": unknown,
        "vocabulary_size": vocabulary_size,
        **extra,
        "undecodable_bytes": undecodable_bytes,
        "corpus": summary,
    }


def prepare_corpus(
    raw: RawDocuments,
    preprocessor: Preprocessor,
    *,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    random_state: int | None = 0,
) -> tuple[PreparedCorpus, dict[str, Any]]:
    """Split, tokenise and count raw documents: everything training needs.

    The vocabulary is fitted on the training documents only, so validation and
    test perplexities are not flattered by words chosen with their help.

    Parameters
    ----------
    raw : RawDocuments
        When ``raw.splits`` is set it is used as given; a missing validation
        (or test) part is then taken at random from the training documents,
        ``valid_size`` (``test_size``) being a fraction of them. Otherwise all
        documents are split at random: ``valid_size`` and ``test_size`` are
        fractions of all documents.
    preprocessor : Preprocessor
        Fitted here, in place, on the training texts.
    valid_size, test_size : float in [0, 1), default=0.1
    random_state : int or None, default=0
        Seeds the split and the completion halves.

    Returns
    -------
    corpus : PreparedCorpus
    report : dict
        ``documents_read``, ``split_from`` ("given" or "random"),
        ``carved_from_train``, ``documents_per_split`` (before dropping),
        ``dropped_empty`` and ``unknown_tokens`` per split (tokens outside the
        training vocabulary), ``vocabulary_size``, ``undecodable_bytes`` (see
        ``encoding_errors``) and the final ``corpus`` summary.

    Raises
    ------
    ValueError
        When no training documents are left.
    """
    if not isinstance(raw, RawDocuments):
        raise TypeError(f"raw must be RawDocuments (from read_documents), got {type(raw).__name__}")
    if not isinstance(preprocessor, Preprocessor):
        raise TypeError(f"preprocessor must be a Preprocessor, got {type(preprocessor).__name__}")
    valid_size = _check_fraction("valid_size", valid_size)
    test_size = _check_fraction("test_size", test_size)
    if not raw.texts:
        raise ValueError(f"no documents in {raw.source or 'the input'}")
    rng = np.random.default_rng(random_state)
    idx, carved, split_from = _assign_splits(raw, valid_size, test_size, rng)
    if idx["train"].size == 0:
        raise ValueError(
            f"no training documents among the {len(raw.texts)} read from {raw.source or 'the input'}; "
            f"lower valid_size/test_size or mark some documents as train"
        )
    train_texts = [raw.texts[i] for i in idx["train"]]
    preprocessor.fit(train_texts)
    vocab = preprocessor.vocabulary_
    parts, dropped, unknown = _count_parts(raw, preprocessor, idx, train_texts)
    if parts["train"] is None:  # cannot happen after a successful fit, but never build an empty corpus
        raise ValueError("no training documents remain after preprocessing")
    settings = prepare_settings(preprocessor, raw.source, split_from, valid_size, test_size, random_state, dropped)
    prepared = PreparedCorpus.from_splits(
        parts["train"],
        parts["valid"],
        parts["test"],
        random_state=random_state,
        settings=settings,
    )
    report = prepare_report(
        len(raw.texts), split_from, carved, {name: int(rows.size) for name, rows in idx.items()}, dropped, unknown,
        len(vocab), raw.undecodable_bytes, prepared.summary(),
    )
    logger.info(
        "prepared %s: V=%d, %s",
        raw.source or "documents",
        len(vocab),
        ", ".join(f"{n} {p.n_docs if p is not None else 0}" for n, p in parts.items()),
    )
    return prepared, report
