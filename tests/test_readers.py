"""Tests for etm.readers: raw document readers, prepared-corpus readers and prepare_corpus."""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import logging
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etm._textio import DecodeTally
from etm.corpus import Corpus, PreparedCorpus, split_halves
from etm.preprocessing import Preprocessor
from etm.readers import (
    FORMATS,
    RawDocuments,
    iter_documents,
    prepare_corpus,
    read_authors_format,
    read_csv,
    read_documents,
    read_folder,
    read_jsonl,
    read_octis,
    read_text_lines,
)


def write_jsonl(path: Path, records: list[dict], *, compress: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# --------------------------------------------------------------------------- #
# Text lines
# --------------------------------------------------------------------------- #
def test_text_lines_keep_blank_lines_and_number_from_one(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("first doc\n\nthird doc\r\nfourth\n", encoding="utf-8")
    raw = read_text_lines(path)
    assert raw.texts == ["first doc", "", "third doc", "fourth"]
    assert raw.doc_ids == ["line 1", "line 2", "line 3", "line 4"]
    assert raw.labels is None and raw.splits is None
    assert raw.source == str(path)


def test_text_lines_last_line_without_newline_and_utf8_bom(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("\ufeffcafé au lait\nlast".encode())
    assert read_text_lines(path).texts == ["café au lait", "last"]


def test_text_lines_gzip_detected_by_magic_bytes(tmp_path):
    path = tmp_path / "docs.txt"  # no .gz suffix
    path.write_bytes(gzip.compress(b"one\ntwo\n"))
    assert read_text_lines(path).texts == ["one", "two"]


def test_text_lines_other_encoding(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("naïve résumé\n".encode("latin-1"))
    assert read_text_lines(path, encoding="latin-1").texts == ["naïve résumé"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        read_text_lines(tmp_path / "nope.txt")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        read_text_lines(path)


def test_file_of_blank_lines_has_no_documents(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n\n")
    with pytest.raises(ValueError, match=r"blank\.txt has no documents: every line is blank"):
        read_text_lines(path)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    with pytest.raises(UnicodeDecodeError, match=r"bad\.txt, line 3; pass the right encoding \(e\.g\. --encoding"):
        read_text_lines(path)


def test_unknown_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with pytest.raises(ValueError, match=r"unknown encoding 'klingon'"):
        read_text_lines(path, encoding="klingon")


# --------------------------------------------------------------------------- #
# JSON lines
# --------------------------------------------------------------------------- #
def test_jsonl_fields_and_split_aliases(tmp_path):
    records = [
        {"body": "doc one", "cat": "a", "part": "train", "key": 7},
        {"body": "doc two", "cat": "b", "part": "Validation", "key": 8},
        {"body": "doc three", "cat": "a", "part": "dev", "key": 9},
        {"body": None, "cat": "b", "part": "TEST", "key": 10},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    raw = read_jsonl(path, text_field="body", label_field="cat", split_field="part", id_field="key")
    assert raw.texts == ["doc one", "doc two", "doc three", ""]
    assert raw.labels == ["a", "b", "a", "b"]
    assert raw.splits == ["train", "valid", "valid", "test"]
    assert raw.doc_ids == ["7", "8", "9", "10"]


def test_jsonl_gz_skips_blank_lines_and_counts_lines(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a b"}\n\n{"text": "c d"}\n'))
    raw = read_jsonl(path)
    assert raw.texts == ["a b", "c d"]
    assert raw.doc_ids == ["line 1", "line 3"]


def test_jsonl_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "broken\n{"text": "ok"}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl, line 3: not valid JSON \(Unterminated string starting at "
                                         r"column 10\)$"):
        read_jsonl(path)
    with pytest.raises(ValueError, match=r"d\.jsonl, line 3: not valid JSON \(Unterminated string starting at "
                                         r"column 10\)$"):
        list(iter_documents(path))
    path.write_text('{"text": "ok"}\n{"text": "a",, "b": 1}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2: not valid JSON \(Expecting property name enclosed in "
                                         r"double quotes at column 14\)$"):
        read_jsonl(path)


def test_jsonl_missing_text_field_lists_existing_fields(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "a"}, {"body": "y", "label": "b"}])
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2: no field 'text'; the fields are: 'body', 'label'"):
        read_jsonl(path)


def test_jsonl_missing_label_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    with pytest.raises(ValueError, match=r"line 1: no field 'topic'; the fields are: 'text'"):
        read_jsonl(path, label_field="topic")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('["a", "list"]\n')
    with pytest.raises(ValueError, match=r"line 1: expected a JSON object per line, got a list"):
        read_jsonl(path)


def test_jsonl_text_that_is_not_a_string(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": 12}])
    with pytest.raises(ValueError, match=r"line 1: field 'text' should hold text, got a int"):
        read_jsonl(path)


def test_jsonl_unknown_split_value(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "split": "train"}, {"text": "y", "split": "holdout"}])
    with pytest.raises(ValueError, match=r"line 2: unknown split 'holdout'; expected one of train, valid, test"):
        read_jsonl(path, split_field="split")


def test_jsonl_gz_undecodable_names_line(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "ok"}\n{"text": "caf\xe9"}\n'))
    with pytest.raises(UnicodeDecodeError, match=r"d\.jsonl\.gz, line 2; pass the right encoding"):
        read_jsonl(path)


def test_jsonl_only_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match=r"d\.jsonl has no documents"):
        read_jsonl(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ValueError, match=r"d\.jsonl\.gz: not a readable gzip file"):
        read_jsonl(path)


# --------------------------------------------------------------------------- #
# CSV / TSV
# --------------------------------------------------------------------------- #
def test_csv_quoted_newlines_and_start_lines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,text,label\n1,"two\nlines, with comma",x\n2,plain,y\n', encoding="utf-8")
    raw = read_csv(path, label_column="label")
    assert raw.texts == ["two\nlines, with comma", "plain"]
    assert raw.labels == ["x", "y"]
    assert raw.doc_ids == ["line 2", "line 4"]
    assert read_csv(path, id_column="id").doc_ids == ["1", "2"]


def test_tsv_delimiter_is_automatic_and_splits_read(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tsplit\nhello, world\ttrain\nbye\tval\n")
    raw = read_csv(path, split_column="split")
    assert raw.texts == ["hello, world", "bye"]
    assert raw.splits == ["train", "valid"]


def test_csv_missing_column_lists_existing_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,label\nhello,a\n")
    with pytest.raises(ValueError, match=r"d\.csv: no column 'text'; the columns are: 'body', 'label'"):
        read_csv(path)


def test_csv_row_with_wrong_number_of_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,a\nbye,b,extra\n")
    with pytest.raises(ValueError, match=r"d\.csv, line 3: 3 fields but the header has 2"):
        read_csv(path)


def test_csv_header_only(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(ValueError, match=r"d\.csv has no documents: only a header row"):
        read_csv(path)


def test_csv_long_field_is_fine(tmp_path):
    path = tmp_path / "d.csv"
    long_text = "word " * 100_000  # beyond the csv module's default 131072-character field limit
    path.write_text(f'text\n"{long_text}"\n')
    assert read_csv(path).texts == [long_text]
    assert csv.field_size_limit() == 131072  # the global limit is restored


def test_csv_undecodable_names_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text\nok\n\xff\xfe bad\n")
    with pytest.raises(UnicodeDecodeError, match=r"d\.csv, line 3; pass the right encoding"):
        read_csv(path)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(TEXT, st.sampled_from(["train", "valid", "test"])), min_size=1, max_size=8))
def test_csv_round_trip(tmp_path, rows):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["text", "split"])
    writer.writerows(rows)
    path = tmp_path / "round.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    raw = read_csv(path, split_column="split")
    assert raw.texts == [t for t, _ in rows]
    assert raw.splits == [s for _, s in rows]


# --------------------------------------------------------------------------- #
# Folders
# --------------------------------------------------------------------------- #
def make_folder(root: Path) -> Path:
    for label, docs in {"space": ["rockets fly", "moon landing"], "autos": ["cars drive"]}.items():
        (root / label).mkdir(parents=True)
        for i, text in enumerate(docs):
            (root / label / f"{100 + i}").write_text(text)
    (root / "space" / ".hidden").write_text("secret")
    (root / ".git").mkdir()
    (root / ".git" / "x").write_text("no")
    return root


def test_folder_labels_are_subfolders_and_ids_relative_paths(tmp_path):
    raw = read_folder(make_folder(tmp_path / "corpus"))
    assert raw.texts == ["cars drive", "rockets fly", "moon landing"]
    assert raw.labels == ["autos", "space", "space"]
    assert raw.doc_ids == ["autos/100", "space/100", "space/101"]


def test_folder_of_files_only_is_unlabelled(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("")
    raw = read_folder(tmp_path)
    assert raw.texts == ["one", ""] and raw.labels is None


def test_folder_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing does not exist"):
        read_folder(tmp_path / "nothing")


def test_folder_without_documents(tmp_path):
    (tmp_path / "empty_label").mkdir()
    with pytest.raises(ValueError, match=r"has no documents: expected text files inside one sub-folder per label"):
        read_folder(tmp_path)


def test_folder_undecodable_file_named(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "doc1").write_bytes(b"ok\n\xff\n")
    with pytest.raises(UnicodeDecodeError, match=r"doc1, line 2; pass the right encoding"):
        read_folder(tmp_path)


def _folder_with_one_bad_byte(root: Path) -> Path:
    """Two label folders of three files; one file holds one byte that is not UTF-8 (a Latin-1 e-acute) on line 2."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"doc{i}").write_text(f"space shuttle {label} {i}\nsecond line\n", encoding="utf-8")
    (root / "b" / "doc1").write_bytes(b"space shuttle\ncaf\xe9 orbit\n")
    return root


def test_folder_with_one_undecodable_byte_strict_names_file_and_line(tmp_path):
    root = _folder_with_one_bad_byte(tmp_path / "docs")
    expected = r"b/doc1, line 2; pass the right encoding \(e\.g\. --encoding latin-1\), or --encoding-errors replace"
    with pytest.raises(UnicodeDecodeError, match=expected):
        read_folder(root)
    with pytest.raises(UnicodeDecodeError, match=expected):
        list(iter_documents(root))


@pytest.mark.parametrize(
    ("policy", "text", "outcome"),
    [
        ("replace", "caf\ufffd orbit", "were replaced by U+FFFD"),
        ("ignore", "caf orbit", "were dropped"),
        ("backslashreplace", "caf\\xe9 orbit", "were kept as \\xNN escapes"),
    ],
)
def test_folder_with_one_undecodable_byte_is_read_and_counted(tmp_path, caplog, policy, text, outcome):
    root = _folder_with_one_bad_byte(tmp_path / "docs")
    with caplog.at_level(logging.WARNING, logger="etm"):
        raw = read_documents(root, encoding_errors=policy)
    assert raw.texts[raw.doc_ids.index("b/doc1")] == f"space shuttle\n{text}\n"
    assert raw.texts[0] == "space shuttle a 0\nsecond line\n" and raw.undecodable_bytes == 1
    message = f"docs: 1 undecodable byte(s) on 1 line(s) of 1 file(s) {outcome} (--encoding-errors {policy})"
    assert message in caplog.text
    assert len(caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="etm"):
        streamed = [r.text for r in iter_documents(root, encoding_errors=policy)]
    assert streamed == raw.texts and len(caplog.records) == 1 and "1 undecodable byte(s)" in caplog.text
    _, report = prepare_corpus(raw, Preprocessor(stop_words=None), valid_size=0.0, test_size=0.0)
    assert report["undecodable_bytes"] == 1


@pytest.mark.parametrize("name", ["d.txt", "d.jsonl", "d.csv"])
def test_undecodable_bytes_of_one_file_counted_per_line(tmp_path, name):
    lines = {"d.txt": [b"caf\xe9 \xe9", b"fine", b"na\xefve"],
             "d.jsonl": [b'{"text": "caf\xe9 \xe9"}', b'{"text": "ok"}', b'{"text": "na\xefve"}'],
             "d.csv": [b"text", b"caf\xe9 \xe9", b"ok", b"na\xefve"]}[name]
    (tmp_path / name).write_bytes(b"\n".join(lines) + b"\n")
    tally = DecodeTally("replace")
    streamed = list(iter_documents(tmp_path / name, encoding_errors="replace", tally=tally))
    raw = read_documents(tmp_path / name, encoding_errors="replace")
    assert [r.text for r in streamed] == raw.texts and raw.texts[0] == "caf\ufffd \ufffd"
    assert raw.undecodable_bytes == 3 and tally.report() == {"undecodable_bytes": 3, "undecodable_lines": 2,
                                                             "undecodable_files": 1}


def test_unknown_encoding_errors_policy_lists_the_choices(tmp_path):
    (tmp_path / "d.txt").write_text("x\n")
    with pytest.raises(ValueError, match=r"encoding_errors='skip' is not one of strict, replace, ignore, backslash"):
        read_documents(tmp_path / "d.txt", encoding_errors="skip")
    with pytest.raises(ValueError, match=r"encoding_errors='skip' is not one of"):
        list(iter_documents(tmp_path / "d.txt", encoding_errors="skip"))


# --------------------------------------------------------------------------- #
# read_documents dispatch
# --------------------------------------------------------------------------- #
def test_read_documents_dispatches_on_suffix(tmp_path):
    (tmp_path / "a.txt").write_text("x y\n")
    write_jsonl(tmp_path / "b.jsonl", [{"text": "x y"}])
    write_jsonl(tmp_path / "c.json.gz", [{"text": "x y"}], compress=True)
    (tmp_path / "d.csv").write_text("text\nx y\n")
    (tmp_path / "e.tsv").write_text("text\tlabel\nx, y\tz\n")
    for name in ("a.txt", "b.jsonl", "c.json.gz", "d.csv"):
        assert read_documents(tmp_path / name).texts == ["x y"], name
    raw = read_documents(tmp_path / "e.tsv", label_field="label")
    assert raw.texts == ["x, y"] and raw.labels == ["z"]
    assert read_documents(make_folder(tmp_path / "f")).labels == ["autos", "space", "space"]


def test_read_documents_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "data.dat"
    path.write_text("text|label\n")
    write_jsonl(path, [{"text": "hi"}])
    assert read_documents(path, format="jsonl").texts == ["hi"]


def test_read_documents_unknown_format():
    with pytest.raises(ValueError, match=r"unknown format 'xml'; choose one of auto, text, jsonl, csv, tsv, folder"):
        read_documents("whatever.xml", format="xml")
    assert FORMATS == ("auto", "text", "jsonl", "csv", "tsv", "folder")


def test_read_documents_unknown_suffix(tmp_path):
    path = tmp_path / "data.xml"
    path.write_text("<doc/>")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*data\.xml.*pass format= one of text, jsonl"):
        read_documents(path)


def test_read_documents_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl does not exist"):
        read_documents(tmp_path / "missing.jsonl")


def test_read_documents_fields_for_text_format(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with pytest.raises(ValueError, match=r"format 'text' has no fields, but \{'label_field': 'label'\} was given"):
        read_documents(path, label_field="label")


def test_read_documents_points_prepared_corpora_to_their_reader(shared_data):
    with pytest.raises(ValueError, match=r"ETM authors' format.*read_authors_format"):
        read_documents(shared_data / "20ng-etm")
    with pytest.raises(ValueError, match=r"OCTIS dataset.*read_octis"):
        read_documents(shared_data / "octis-m10")


# --------------------------------------------------------------------------- #
# RawDocuments
# --------------------------------------------------------------------------- #
def test_raw_documents_checks_lengths():
    with pytest.raises(ValueError, match=r"RawDocuments.labels has 1 entries but there are 2 texts"):
        RawDocuments(texts=["a", "b"], labels=["x"])


def test_raw_documents_rejects_bare_string():
    with pytest.raises(TypeError, match=r"RawDocuments.texts must be a list of str, got a single str"):
        RawDocuments(texts="one document")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# ETM authors' format
# --------------------------------------------------------------------------- #
def test_authors_format_real_20ng(shared_data):
    corpus = read_authors_format(shared_data / "20ng-etm")
    assert corpus.vocabulary[:3] == ["ii", "plate", "duke"]
    assert len(corpus.vocabulary) == 3072
    assert corpus.train.n_docs == 11214
    assert corpus.valid is not None and corpus.valid.n_docs == 100
    assert corpus.test is not None and corpus.test.n_docs == 7531
    h1, h2 = corpus.test_halves
    assert h1.shape == h2.shape == (7531, 3072)
    assert corpus.valid_halves is not None and corpus.valid_halves[0].shape[1] == 3072
    assert corpus.train.counts.dtype == np.int32 and sp.isspmatrix_csr(corpus.train.counts)
    assert corpus.train.doc_lengths().min() > 0
    assert corpus.settings["format"] == "etm-authors"
    # seeded valid halves
    again = read_authors_format(shared_data / "20ng-etm")
    assert (again.valid_halves[0] != corpus.valid_halves[0]).nnz == 0


def small_prepared(with_empty: bool = True) -> PreparedCorpus:
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 3, size=(12, 6))
    dense[dense.sum(axis=1) < 2, 0] = 2
    vocab = [f"w{i}" for i in range(6)]
    train = Corpus(sp.csr_matrix(dense[:8]), vocab)
    valid = Corpus(sp.csr_matrix(dense[8:10]), vocab)
    test = Corpus(sp.csr_matrix(dense[10:]), vocab)
    return PreparedCorpus.from_splits(train, valid, test, random_state=0)


def test_authors_format_round_trip_through_export(tmp_path):
    corpus = small_prepared()
    corpus.to_authors_format(tmp_path)
    back = read_authors_format(tmp_path)
    assert back.vocabulary == corpus.vocabulary
    for name in ("train", "valid", "test"):
        assert (getattr(back, name).counts != getattr(corpus, name).counts).nnz == 0
    for a, b in zip(back.test_halves, corpus.test_halves):
        assert (a != b).nnz == 0


def test_authors_format_export_without_valid_part(tmp_path):
    full = small_prepared()
    corpus = PreparedCorpus.from_splits(full.train, None, full.test, random_state=0)
    corpus.to_authors_format(tmp_path)
    assert not list(tmp_path.glob("bow_va_*"))
    back = read_authors_format(tmp_path)
    assert back.vocabulary == corpus.vocabulary
    assert (back.train.counts != corpus.train.counts).nnz == 0
    assert back.train.counts.shape == corpus.train.counts.shape
    assert back.valid is None and back.valid_halves is None
    assert back.settings["dropped_empty"]["valid"] == 0
    assert (back.test.counts != corpus.test.counts).nnz == 0
    for a, b in zip(back.test_halves, corpus.test_halves):  # given halves are kept as they are
        assert (a != b).nnz == 0


def test_authors_format_without_test_halves_draws_them_seeded(tmp_path):
    corpus = small_prepared()
    corpus.to_authors_format(tmp_path)
    for path in tmp_path.glob("bow_ts_h*_*.mat"):
        path.unlink()
    back = read_authors_format(tmp_path, random_state=3)
    again = read_authors_format(tmp_path, random_state=3)
    rng = np.random.default_rng(3)
    split_halves(back.valid.counts, rng)  # the validation halves are drawn first, from the same generator
    first, second, kept = split_halves(back.test.counts, rng)
    for a, b, c in zip(back.test_halves, again.test_halves, (first, second)):
        assert (a != b).nnz == 0 and (a != c).nnz == 0
    assert (back.test_halves[0] + back.test_halves[1] != back.test.counts[kept]).nnz == 0
    assert back.n_unsplittable["test"] == back.test.n_docs - kept.size


def test_authors_format_partial_optional_group_is_an_error(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    (tmp_path / "bow_va_counts.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"is missing bow_va_counts\.mat \(ETM authors' format\)"):
        read_authors_format(tmp_path)


def test_authors_format_empty_document_is_dropped_and_counted(tmp_path):
    import scipy.io

    small_prepared().to_authors_format(tmp_path)
    for kind, docs in (("tokens", [[0, 2], [], [5]]), ("counts", [[1, 3], [], [2]])):
        cell = np.empty((1, 3), dtype=object)
        for i, doc in enumerate(docs):
            cell[0, i] = np.asarray(doc, dtype=np.int32).reshape(1, -1)
        scipy.io.savemat(tmp_path / f"bow_tr_{kind}.mat", {kind: cell})
    corpus = read_authors_format(tmp_path)
    assert corpus.train.counts.toarray().tolist() == [[1, 0, 3, 0, 0, 0], [0, 0, 0, 0, 0, 2]]
    assert list(corpus.train.doc_ids) == ["tr 0", "tr 2"]
    assert corpus.settings["dropped_empty"]["train"] == 1


def test_authors_format_missing_file_is_named(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    (tmp_path / "bow_ts_h2_counts.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"is missing bow_ts_h2_counts\.mat \(ETM authors' format\)"):
        read_authors_format(tmp_path)


def test_authors_format_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist or is not a folder"):
        read_authors_format(tmp_path / "nowhere")


def test_vocab_pickle_with_globals_is_refused(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    # Any class reference is refused, harmless or not; os.system would be refused the same way.
    (tmp_path / "vocab.pkl").write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(ValueError, match=r"vocab\.pkl: refusing to load collections\.OrderedDict"):
        read_authors_format(tmp_path)


def test_vocab_pickle_must_be_a_list_of_str(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    (tmp_path / "vocab.pkl").write_bytes(pickle.dumps(["a", 2, "c"]))
    with pytest.raises(ValueError, match=r"vocab\.pkl: expected a list of str, but item 1 is a int"):
        read_authors_format(tmp_path)


def test_vocab_pickle_garbage(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    (tmp_path / "vocab.pkl").write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match=r"vocab\.pkl: "):
        read_authors_format(tmp_path)


def test_authors_format_token_out_of_range(tmp_path):
    small_prepared().to_authors_format(tmp_path)
    (tmp_path / "vocab.pkl").write_bytes(pickle.dumps(["w0", "w1"]))
    with pytest.raises(ValueError, match=r"bow_tr_tokens\.mat: word index \d+ is outside the 2-word vocabulary"):
        read_authors_format(tmp_path)


# --------------------------------------------------------------------------- #
# OCTIS
# --------------------------------------------------------------------------- #
def test_octis_real_m10(shared_data):
    corpus = read_octis(shared_data / "octis-m10")
    assert len(corpus.vocabulary) == 1696
    assert (corpus.train.n_docs, corpus.valid.n_docs, corpus.test.n_docs) == (5847, 1254, 1254)
    assert corpus.train.labels is not None and set(corpus.train.labels) == {str(i) for i in range(10)}
    assert corpus.train.doc_ids[0] == "line 1"
    assert corpus.settings["format"] == "octis"


def test_octis_unknown_words_are_counted(tmp_path, caplog):
    (tmp_path / "vocabulary.txt").write_text("apple\nbanana\ncherry\n")
    (tmp_path / "corpus.tsv").write_text(
        "apple banana kiwi\ttrain\tfruit\ncherry cherry\ttrain\tfruit\nkiwi\tval\tx\nbanana apple\ttest\ty\n"
    )
    with caplog.at_level("WARNING", logger="etm.formats"):
        corpus = read_octis(tmp_path)
    assert corpus.settings["unknown_tokens"] == 2
    assert corpus.settings["dropped_empty"] == {"train": 0, "valid": 1, "test": 0}
    assert corpus.valid is None and corpus.valid_halves is None  # its only document had no known word
    assert corpus.train.counts.toarray().tolist() == [[1, 1, 0], [0, 0, 2]]
    assert "2 tokens are not in vocabulary.txt" in caplog.text


def test_octis_missing_vocabulary(tmp_path):
    (tmp_path / "corpus.tsv").write_text("a\ttrain\tx\n")
    with pytest.raises(FileNotFoundError, match=r"vocabulary\.txt is missing \(OCTIS dataset format\)"):
        read_octis(tmp_path)


def test_octis_bad_line(tmp_path):
    (tmp_path / "vocabulary.txt").write_text("a\n")
    (tmp_path / "corpus.tsv").write_text("a\ttrain\tx\na b c\n")
    with pytest.raises(ValueError, match=r"corpus\.tsv, line 2: expected tokens<TAB>split<TAB>label, got 1"):
        read_octis(tmp_path)


# --------------------------------------------------------------------------- #
# prepare_corpus
# --------------------------------------------------------------------------- #
def raw_animals(n: int = 40) -> RawDocuments:
    words = ["cat", "dog", "bird", "fish", "horse", "cow"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=5)) for _ in range(n)]
    return RawDocuments(texts=texts, labels=[f"L{i % 3}" for i in range(n)], doc_ids=[f"d{i}" for i in range(n)])


def test_prepare_corpus_random_split_is_seeded():
    raw = raw_animals()
    a, report = prepare_corpus(raw, Preprocessor(), valid_size=0.2, test_size=0.1, random_state=3)
    b, _ = prepare_corpus(raw, Preprocessor(), valid_size=0.2, test_size=0.1, random_state=3)
    assert (a.train.n_docs, a.valid.n_docs, a.test.n_docs) == (28, 8, 4)
    assert list(a.valid.doc_ids) == list(b.valid.doc_ids)
    assert report["split_from"] == "random"
    assert report["documents_read"] == 40
    assert report["vocabulary_size"] == 6
    assert a.settings["preprocessing"] == Preprocessor().settings()
    assert a.valid_halves is not None and a.test_halves is not None
    json.dumps(report)
    json.dumps(a.settings)


def test_prepare_corpus_fits_vocabulary_on_train_only_and_reports_unknown():
    raw = RawDocuments(
        texts=["apple banana", "banana cherry", "kiwi apple", "zebra zebra"],
        splits=["train", "train", "valid", "test"],
        source="mem",
    )
    corpus, report = prepare_corpus(raw, Preprocessor())
    assert corpus.vocabulary == ["apple", "banana", "cherry"]
    assert report["unknown_tokens"] == {"train": 0, "valid": 1, "test": 2}
    assert report["dropped_empty"] == {"train": 0, "valid": 0, "test": 1}
    assert corpus.test is None  # its only document had no known word
    assert corpus.settings["source"] == "mem"


def test_prepare_corpus_drops_empty_documents_and_counts_them(caplog):
    raw = RawDocuments(texts=["cat dog", "", "the of", "dog bird", "42", "cat bird"], splits=["train"] * 6)
    with caplog.at_level("INFO", logger="etm.readers"):
        corpus, report = prepare_corpus(raw, Preprocessor(), valid_size=0.0, test_size=0.0)
    assert report["dropped_empty"]["train"] == 3
    assert corpus.train.n_docs == 3
    assert "dropped 3 of 6 train documents left empty by preprocessing" in caplog.text


def test_prepare_corpus_carves_missing_valid_from_train():
    raw = raw_animals(50)
    raw.splits = ["test" if i % 5 == 0 else "train" for i in range(50)]
    corpus, report = prepare_corpus(raw, Preprocessor(), valid_size=0.25, random_state=0)
    assert report["split_from"] == "given"
    assert report["carved_from_train"] == {"valid": 10}
    assert report["documents_per_split"] == {"train": 30, "valid": 10, "test": 10}
    assert not set(corpus.valid.doc_ids) & set(corpus.train.doc_ids)
    assert set(corpus.test.doc_ids) == {f"d{i}" for i in range(0, 50, 5)}
    for part in (corpus.train, corpus.valid, corpus.test):  # labels travel with their documents
        assert [f"L{int(i[1:]) % 3}" for i in part.doc_ids] == list(part.labels)


def test_prepare_corpus_without_training_documents():
    raw = RawDocuments(texts=["a cat", "a dog"], splits=["test", "test"], source="x.jsonl")
    with pytest.raises(ValueError, match=r"no training documents among the 2 read from x\.jsonl"):
        prepare_corpus(raw, Preprocessor())


def test_prepare_corpus_all_documents_empty():
    raw = RawDocuments(texts=["the", "", "42"])
    with pytest.raises(ValueError, match=r"empty vocabulary"):
        prepare_corpus(raw, Preprocessor(), valid_size=0.0, test_size=0.0)


def test_prepare_corpus_bad_fraction():
    with pytest.raises(ValueError, match=r"valid_size must be a fraction in \[0, 1\), got 1.5"):
        prepare_corpus(raw_animals(), Preprocessor(), valid_size=1.5)


def test_prepared_corpus_saves_and_loads(tmp_path):
    corpus, _ = prepare_corpus(raw_animals(), Preprocessor())
    corpus.save(tmp_path / "c")
    back = PreparedCorpus.load(tmp_path / "c")
    assert back.vocabulary == corpus.vocabulary
    assert back.settings["preprocessing"] == corpus.settings["preprocessing"]
    assert list(back.train.labels) == list(corpus.train.labels)


# --------------------------------------------------------------------------- #
# Real raw data: a slice of 20 Newsgroups
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def news_slice(shared_data, tmp_path_factory) -> Path:
    """The first 1500 train and first 500 test messages (the file lists all train messages first)."""
    src = shared_data / "20news-bydate.jsonl.gz"
    if not src.is_file():
        pytest.fail(f"{src} is missing from the shared data", pytrace=False)
    kept: list[bytes] = []
    n_test = 0
    with gzip.open(src, "rb") as fh:
        for i, line in enumerate(fh):
            if i < 1500:
                kept.append(line)
            elif b'"split": "test"' in line[:200]:
                kept.append(line)
                n_test += 1
                if n_test == 500:
                    break
    out = tmp_path_factory.mktemp("news") / "news.jsonl.gz"
    out.write_bytes(gzip.compress(b"".join(kept)))
    return out


def test_20news_slice_with_newsgroup_stripping(news_slice):
    raw = read_documents(news_slice, label_field="label", split_field="split", id_field="id")
    assert len(raw) == 2000
    assert set(raw.splits) == {"train", "test"}
    assert len(set(raw.labels)) >= 2
    assert raw.doc_ids[0].startswith("train/")
    assert all(t.startswith(("From:", "Subject:")) for t in raw.texts[:10])

    pre = Preprocessor(min_df=3, max_df=0.7, strip_newsgroup=True)
    corpus, report = prepare_corpus(raw, pre, valid_size=0.1, random_state=0)
    assert report["carved_from_train"] == {"valid": 150}
    assert corpus.test.n_docs + report["dropped_empty"]["test"] == 500
    assert corpus.train.labels is not None
    # header field names are gone: "nntp" only ever appears in headers; "organization" and "lines" mostly do
    assert "nntp" not in corpus.vocabulary
    unstripped = Preprocessor(min_df=3, max_df=1.0, stop_words=None).fit(raw.texts)
    before = unstripped.transform(raw.texts).sum(axis=0).A1
    after = Preprocessor.from_settings(pre.settings(), vocabulary=unstripped.vocabulary_).transform(raw.texts)
    after = after.sum(axis=0).A1
    for word in ("organization", "lines", "subject"):
        j = unstripped.vocabulary_.index(word)
        assert after[j] < 0.1 * before[j], (word, after[j], before[j])


def test_strip_newsgroup_removes_the_headers_of_real_messages(news_slice):
    from etm.preprocessing import strip_newsgroup_text

    raw = read_jsonl(news_slice)
    stripped = [strip_newsgroup_text(t) for t in raw.texts]
    header_lines = [t.partition("\n\n")[0].split("\n") for t in raw.texts]
    still_there = sum(
        any(line in out.split("\n") for line in head if line.startswith(("Lines:", "Organization:")))
        for head, out in zip(header_lines, stripped)
    )
    assert still_there / len(raw) < 0.01
    assert sum(out.startswith(("From:", "Subject:")) for out in stripped) / len(raw) < 0.01
    # messages starting with the folded tail of a Path: header are stripped too
    folded = [i for i, t in enumerate(raw.texts) if t.startswith(" ") and "\nFrom:" in t.partition("\n\n")[0]]
    assert folded, "the slice should contain such messages"
    assert all("From:" not in stripped[i].partition("\n")[0] for i in folded)
    # no encoded binary survives: no line of 40 or more characters without whitespace
    def unbroken(texts: list[str]) -> int:
        return sum(len(line.strip()) >= 40 and not re.search(r"\s", line.strip())
                   for text in texts for line in text.split("\n"))

    assert unbroken(raw.texts) > 0 and unbroken(stripped) == 0


# --------------------------------------------------------------------------- #
# Property: split_halves
# --------------------------------------------------------------------------- #
@settings(max_examples=60, deadline=None)
@given(
    dense=st.integers(1, 6).flatmap(
        lambda v: st.lists(st.lists(st.integers(0, 4), min_size=v, max_size=v), min_size=1, max_size=8)
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_halves_preserves_counts_and_both_halves_are_non_empty(dense, seed):
    counts = sp.csr_matrix(np.asarray(dense, dtype=np.int64))
    first, second, kept = split_halves(counts, seed)
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    assert list(kept) == list(np.flatnonzero(lengths >= 2))
    assert ((first + second) != counts[kept]).nnz == 0
    if kept.size:
        n1 = np.asarray(first.sum(axis=1)).ravel()
        n2 = np.asarray(second.sum(axis=1)).ravel()
        assert (n1 >= 1).all() and (n2 >= 1).all()
        assert (n1 == lengths[kept] // 2).all()
