"""Corpora larger than memory: streaming reads, sharded preparation, batch sources, training and the CLI on shards.

The reference for every streamed or sharded result is the in-memory path
(:func:`etm.readers.read_documents`, :func:`etm.readers.prepare_corpus`), which
the rest of the test suite covers.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from etm.cli import main
from etm.corpus import Corpus, CorpusSource, PreparedCorpus
from etm.corpus.batching import InMemoryBatches, ShardedBatches
from etm.preprocessing import Preprocessor
from etm.readers import iter_documents, prepare_corpus, read_documents
from etm.shards import ShardedCorpus, is_sharded_corpus, open_corpus, prepare_sharded

NEWS_OPTIONS = {"label_field": "label", "split_field": "split"}


def _news_preprocessor(**extra) -> Preprocessor:
    return Preprocessor(min_df=5, max_df=0.5, strip_newsgroup=True, **extra)


def _write_jsonl(path: Path, records: list[dict], *, compress: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _line_number(doc_id: str) -> int:
    assert doc_id.startswith("line "), doc_id
    return int(doc_id.split()[1])


def _part(shards) -> tuple[sp.csr_matrix, list[str] | None, list[str]]:
    """A sharded part read straight from its shards, rows sorted by the line each document came from."""
    matrix = sp.vstack([s.matrix() for s in shards], format="csr")
    ids = [i for s in shards for i in s.doc_ids()]
    labels = None if shards[0].labels() is None else [lab for s in shards for lab in s.labels()]
    order = np.argsort([_line_number(i) for i in ids], kind="stable")
    return (matrix[order], None if labels is None else [labels[i] for i in order], [ids[i] for i in order])


def _same_matrix(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    a, b = sp.csr_matrix(a), sp.csr_matrix(b)
    return a.shape == b.shape and (a.astype(np.int64) != b.astype(np.int64)).nnz == 0


def _row_keys(matrix: sp.csr_matrix) -> list[tuple]:
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    return [
        (tuple(m.indices[a:b].tolist()), tuple(m.data[a:b].astype(np.int64).tolist()))
        for a, b in zip(m.indptr[:-1], m.indptr[1:])
    ]


# --------------------------------------------------------------------------- #
# Module fixtures: real 20 Newsgroups, prepared once
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def news_file(shared_data: Path, tmp_path_factory) -> Path:
    """2400 training and 600 test messages of raw 20NG as they come in the file (sorted by split, then label)."""
    limits, counts = {"train": 2400, "test": 600}, {"train": 0, "test": 0}
    records = []
    with gzip.open(shared_data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if counts[rec["split"]] < limits[rec["split"]]:
                counts[rec["split"]] += 1
                records.append({"text": rec["text"], "label": rec["label"], "split": rec["split"]})
            if counts == limits:
                break
    return _write_jsonl(tmp_path_factory.mktemp("news3000") / "news.jsonl", records)


@pytest.fixture(scope="module")
def in_memory(news_file: Path) -> tuple[PreparedCorpus, dict]:
    raw = read_documents(news_file, **NEWS_OPTIONS)
    return prepare_corpus(raw, _news_preprocessor(), valid_size=0.0, test_size=0.0)


@pytest.fixture(scope="module")
def sharded(news_file: Path) -> tuple[ShardedCorpus, dict]:
    out = news_file.parent / "sharded"
    return prepare_sharded(news_file, _news_preprocessor(), out, reader_options=NEWS_OPTIONS, shard_size=400,
                           valid_size=0.0, test_size=0.0)


@pytest.fixture(scope="module")
def small_news(news_workspace: Path) -> Path:
    """600 training + 200 test raw messages (conftest's ``newsgroup_records``), gzipped JSONL."""
    return news_workspace / "news.jsonl.gz"


# --------------------------------------------------------------------------- #
# 1. iter_documents streams what read_documents reads
# --------------------------------------------------------------------------- #
def _assert_streams_like_read(path: Path, **options) -> list:
    raw = read_documents(path, **options)
    records = list(iter_documents(path, **options))
    assert [r.text for r in records] == raw.texts
    assert [r.doc_id for r in records] == raw.doc_ids
    assert [r.label for r in records] == (raw.labels if raw.labels is not None else [None] * len(raw))
    assert [r.split for r in records] == (raw.splits if raw.splits is not None else [None] * len(raw))
    return records


def test_iter_text_lines_keeps_blank_lines_as_empty_documents(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("\ufefffirst doc\n\nthird doc\r\n   \nlast".encode())
    records = _assert_streams_like_read(path)
    assert [r.text for r in records] == ["first doc", "", "third doc", "   ", "last"]
    assert [r.doc_id for r in records] == [f"line {i}" for i in range(1, 6)]


@pytest.mark.parametrize("compress", [False, True])
def test_iter_jsonl_plain_and_gzipped(tmp_path, compress):
    path = tmp_path / ("docs.jsonl.gz" if compress else "docs.jsonl")
    records = [
        {"text": "alpha beta", "label": "a", "split": "train", "id": 7},
        {"text": "gamma", "label": "b", "split": "validation", "id": "x"},
        {"text": None, "label": 3, "split": "TEST", "id": "y"},
    ]
    data = json.dumps(records[0]) + "\n\n" + json.dumps(records[1]) + "\n  \n" + json.dumps(records[2]) + "\n"
    path.write_bytes(gzip.compress(data.encode()) if compress else data.encode())
    streamed = _assert_streams_like_read(path, label_field="label", split_field="split")
    assert [r.doc_id for r in streamed] == ["line 1", "line 3", "line 5"]  # blank lines skipped, not renumbered
    assert [r.split for r in streamed] == ["train", "valid", "test"]
    assert [r.label for r in streamed] == ["a", "b", "3"]
    streamed = _assert_streams_like_read(path, id_field="id")
    assert [r.doc_id for r in streamed] == ["7", "x", "y"]


def test_iter_csv_quoted_fields_with_newlines_and_delimiters(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text(
        'text,label,split\n'
        '"one, with a comma",a,train\n'
        '"two\nspans\nthree lines",b,test\n'
        '\n'
        '"say ""hi"", then\nleave",c,valid\n'
        'plain,d,train\n',
        encoding="utf-8",
    )
    records = _assert_streams_like_read(path, label_field="label", split_field="split")
    assert [r.text for r in records] == ["one, with a comma", "two\nspans\nthree lines", 'say "hi", then\nleave',
                                         "plain"]
    assert [r.doc_id for r in records] == ["line 2", "line 3", "line 7", "line 9"]  # the line each record starts on


def test_iter_csv_with_crlf_line_ends_keeps_quoted_line_breaks(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_bytes(b'text,label\r\n"first\r\nsecond",a\r\nplain,b\r\n')
    _assert_streams_like_read(path, label_field="label")


@pytest.mark.parametrize("name", ["docs.tsv", "docs.tsv.gz"])
def test_iter_tsv(tmp_path, name):
    path = tmp_path / name
    data = b'id\ttext\tlabel\nd1\t"tab\tinside"\tx\nd2\tno, comma split\ty\nd3\t"multi\nline"\tz\n'
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    records = _assert_streams_like_read(path, label_field="label", id_field="id")
    assert [r.text for r in records] == ["tab\tinside", "no, comma split", "multi\nline"]
    assert [r.doc_id for r in records] == ["d1", "d2", "d3"]


def test_iter_folder_of_label_subfolders(tmp_path):
    root = tmp_path / "corpus"
    for rel, text in {"space/101": "moon landing", "space/100": "rockets fly", "autos/100": "cars drive",
                      "autos/deep/5": "nested file", "autos/empty": "", "space/.hidden": "skip me",
                      ".git/x": "skip me too"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "loose.txt").write_text("outside the label folders", encoding="utf-8")
    records = _assert_streams_like_read(root)
    assert [(r.label, r.doc_id, r.text) for r in records] == [
        ("autos", "autos/100", "cars drive"),
        ("autos", "autos/empty", ""),
        ("autos", "autos/deep/5", "nested file"),  # a folder's own files come before its sub-folders
        ("space", "space/100", "rockets fly"),
        ("space", "space/101", "moon landing"),
    ]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "b.txt").write_text("bee", encoding="utf-8")
    (flat / "a.txt").write_text("ay", encoding="utf-8")
    records = _assert_streams_like_read(flat)
    assert [(r.label, r.text) for r in records] == [(None, "ay"), (None, "bee")]


def test_iter_documents_streams_lazily(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "also fine"}\n{broken\n', encoding="utf-8")
    it = iter_documents(path)
    assert next(it).text == "fine"  # records come before the bad line is ever read
    assert next(it).text == "also fine"
    with pytest.raises(ValueError, match=r"docs\.jsonl, line 3: not valid JSON"):
        next(it)


def test_iter_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b",}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: not valid JSON"):
        list(iter_documents(path))
    path.write_text('{"text": "a"}\n["a list"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: expected a JSON object per line, got a list"):
        list(iter_documents(path))
    path.write_text('{"text": "a", "label": "x"}\n{"body": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: no field 'text'; the fields are: 'body'"):
        list(iter_documents(path))


def test_iter_csv_wrong_field_count_names_the_record_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('text,label\n"multi\nline",a\nthree,fields,here\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv, line 4: 3 fields but the header has 2"):
        list(iter_documents(path, label_field="label"))


def test_iter_csv_missing_column_lists_the_columns(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text("body,category\nhello,a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"docs\.csv: no column 'text'; the columns are: 'body', 'category'"):
        list(iter_documents(path))
    with pytest.raises(ValueError, match=r"no column 'label'; the columns are: 'body', 'category'"):
        list(iter_documents(path, text_field="body", label_field="label"))


@pytest.mark.parametrize("name", ["latin.txt", "latin.jsonl", "latin.csv"])
def test_iter_undecodable_bytes_name_the_line_and_encoding_option(tmp_path, name):
    path = tmp_path / name
    header = b"text\n" if name.endswith(".csv") else b""
    line = (lambda s: b'{"text": "' + s + b'"}') if name.endswith(".jsonl") else (lambda s: s)
    path.write_bytes(header + line(b"fine") + b"\n" + line(b"caf\xe9") + b"\n")
    bad_line = 3 if header else 2
    with pytest.raises(UnicodeDecodeError) as info:
        list(iter_documents(path))
    assert f"{name}, line {bad_line}" in info.value.reason and "--encoding" in info.value.reason
    assert [r.text for r in iter_documents(path, encoding="latin-1")][-1] == "café"


def test_iter_utf16_text(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("first doc\nsecond doc\n".encode("utf-16"))
    _assert_streams_like_read(path, encoding="utf-16")


# --------------------------------------------------------------------------- #
# 2. prepare_sharded against prepare_corpus, on real data
# --------------------------------------------------------------------------- #
def test_sharded_matches_in_memory_vocabulary_counts_and_labels(in_memory, sharded):
    pc, mem_report = in_memory
    sc, report = sharded
    assert sc.vocabulary == pc.vocabulary
    assert len(sc.vocabulary) > 1000
    for name in ("train", "test"):
        counts, labels, ids = _part(sc.parts[name])
        part = getattr(pc, name)
        order = np.argsort([_line_number(i) for i in part.doc_ids], kind="stable")
        assert ids == [part.doc_ids[i] for i in order], name
        assert labels == [part.labels[i] for i in order], name
        assert _same_matrix(counts, part.counts[order]), name
    assert "valid" not in sc.parts and pc.valid is None
    assert report["documents_read"] == mem_report["documents_read"] == 3000
    assert report["documents_per_split"] == mem_report["documents_per_split"] == {"train": 2400, "valid": 0,
                                                                                  "test": 600}
    assert report["dropped_empty"] == mem_report["dropped_empty"]
    assert report["unknown_tokens"] == mem_report["unknown_tokens"]
    assert report["split_from"] == "given" and report["carved_from_train"] == {}
    assert sc.settings["preprocessing"] == pc.settings["preprocessing"]


def test_small_shard_size_gives_several_randomly_mixed_shards(news_file, sharded):
    sc, report = sharded
    file_labels = [r.label for r in iter_documents(news_file, **NEWS_OPTIONS) if r.split == "train"]
    assert file_labels == sorted(file_labels), "the input must be sorted by label for this test to mean anything"
    n_labels = len(set(file_labels))
    assert n_labels >= 4
    shards = sc.parts["train"]
    assert len(shards) == math.ceil(2400 / 400)
    assert report["corpus"]["train_shards"] == len(shards)
    assert sum(s.n_docs for s in shards) == sc.n_docs("train") == report["corpus"]["train_documents"]
    for shard in shards:
        assert 250 < shard.n_docs < 550, shard.info()
        labels = Counter(shard.labels())
        assert len(labels) == n_labels, (shard.name, labels)  # a random sample holds every label
        lines = sorted(_line_number(i) for i in shard.doc_ids())
        assert lines[-1] - lines[0] > 2000  # drawn from the whole file, not a contiguous block


def test_random_split_fractions_without_a_split_field(small_news, tmp_path):
    sc, report = prepare_sharded(small_news, _news_preprocessor(), tmp_path / "c", shard_size=10_000,
                                 reader_options={"label_field": "label"}, valid_size=0.2, test_size=0.1,
                                 random_state=3)
    n = 800
    per = report["documents_per_split"]
    assert report["split_from"] == "random"
    assert sum(per.values()) == report["documents_read"] == n
    for name, share in (("valid", 0.2), ("test", 0.1)):
        sd = math.sqrt(n * share * (1 - share))
        assert abs(per[name] - n * share) < 4 * sd, (name, per)
        assert sc.n_docs(name) == per[name] - report["dropped_empty"][name]
        assert len(sc.halves[name]) >= 1
    # every document is in exactly one part
    ids = [i for part in sc.parts.values() for s in part for i in s.doc_ids()]
    assert len(ids) == len(set(ids)) == n - sum(report["dropped_empty"].values())


def test_missing_valid_part_is_drawn_from_train(small_news, tmp_path):
    sc, report = prepare_sharded(small_news, _news_preprocessor(), tmp_path / "c", shard_size=10_000,
                                 reader_options=NEWS_OPTIONS, valid_size=0.2, test_size=0.1)
    splits = {r.doc_id: r.split for r in iter_documents(small_news, **NEWS_OPTIONS)}
    assert report["split_from"] == "given"
    assert set(report["carved_from_train"]) == {"valid"}  # the input has test documents: none carved
    carved = report["carved_from_train"]["valid"]
    assert abs(carved - 0.2 * 600) < 4 * math.sqrt(600 * 0.2 * 0.8)
    assert report["documents_per_split"] == {"train": 600 - carved, "valid": carved, "test": 200}
    for name, source_split in (("train", "train"), ("valid", "train"), ("test", "test")):
        ids = [i for s in sc.parts[name] for i in s.doc_ids()]
        assert ids and {splits[i] for i in ids} == {source_split}, name
    assert sc.halves.get("valid") and sc.halves.get("test")


def test_empty_documents_are_dropped_and_counted(tmp_path):
    lines = ["apples pears", "", "the of and", "pears plums", "   ", "apples plums pears", "12345", "plums"]
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sc, report = prepare_sharded(path, Preprocessor(), tmp_path / "c", shard_size=2, valid_size=0.0,
                                 test_size=0.0)
    _, mem_report = prepare_corpus(read_documents(path), Preprocessor(), valid_size=0.0, test_size=0.0)
    assert report["dropped_empty"] == mem_report["dropped_empty"] == {"train": 4, "valid": 0, "test": 0}
    assert sc.settings["dropped_empty"]["train"] == 4
    kept = sorted(i for s in sc.parts["train"] for i in s.doc_ids())
    assert kept == ["line 1", "line 4", "line 6", "line 8"]
    assert sc.vocabulary == ["apples", "pears", "plums"]
    assert all(s.n_docs > 0 for s in sc.parts["train"])


def _tf_of_words(texts: list[str], preprocessor: Preprocessor) -> dict[str, int]:
    counts = preprocessor.fit_transform(texts)
    return dict(zip(preprocessor.vocabulary_, np.asarray(counts.sum(axis=0)).ravel().tolist()))


@pytest.fixture(scope="module")
def max_features_case(small_news, tmp_path_factory):
    mf = 700
    out = tmp_path_factory.mktemp("maxfeat") / "c"
    sc, _ = prepare_sharded(small_news, _news_preprocessor(max_features=mf), out, reader_options=NEWS_OPTIONS,
                            shard_size=10_000, valid_size=0.0, test_size=0.0)
    raw = read_documents(small_news, **NEWS_OPTIONS)
    pc, _ = prepare_corpus(raw, _news_preprocessor(max_features=mf), valid_size=0.0, test_size=0.0)
    train_texts = [t for t, s in zip(raw.texts, raw.splits) if s == "train"]
    tf = _tf_of_words(train_texts, _news_preprocessor())  # every word min_df/max_df keep, with its frequency
    return mf, sc, pc, tf


def test_max_features_keeps_the_most_frequent_words(max_features_case):
    mf, sc, pc, tf = max_features_case
    assert len(tf) > mf
    assert len(sc.vocabulary) == len(pc.vocabulary) == mf
    assert sc.vocabulary == sorted(sc.vocabulary)
    kept, dropped = set(sc.vocabulary), set(tf) - set(sc.vocabulary)
    cutoff = min(tf[w] for w in kept)
    assert max(tf[w] for w in dropped) <= cutoff
    # away from the cutoff frequency the choice is forced, and both paths agree
    assert {w for w in sc.vocabulary if tf[w] > cutoff} == {w for w in pc.vocabulary if tf[w] > cutoff}
    assert all(tf[w] >= cutoff for w in pc.vocabulary)


def test_max_features_ties_are_broken_as_countvectorizer_does(max_features_case):
    _, sc, pc, _ = max_features_case
    assert sc.vocabulary == pc.vocabulary


def test_truncated_shard_file_is_caught_on_load(sharded, tmp_path):
    sc, _ = sharded
    copy = tmp_path / "copy"
    shutil.copytree(sc.root, copy)
    assert ShardedCorpus.load(copy).n_docs("train") == sc.n_docs("train")
    victim = copy / "shards" / f"{sc.parts['train'][1].name}.indices"
    victim.write_bytes(victim.read_bytes()[:-8])
    with pytest.raises(ValueError, match=rf"{victim.name} has \d+ bytes but meta\.json implies \d+"):
        ShardedCorpus.load(copy)
    with pytest.raises(ValueError, match=victim.name):
        PreparedCorpus.load(copy)


def test_corpus_written_before_token_totals_were_recorded_still_loads(sharded, tmp_path):
    sc, _ = sharded
    copy = tmp_path / "old"
    shutil.copytree(sc.root, copy)
    meta = json.loads((copy / "meta.json").read_text())
    for infos in [*meta["parts"].values(), *(side for pair in meta["halves"].values() for side in pair)]:
        for info in infos:
            info.pop("tokens")
    (copy / "meta.json").write_text(json.dumps(meta))
    old = ShardedCorpus.load(copy)
    assert [s.n_tokens for s in old.parts["train"]] == [s.n_tokens for s in sc.parts["train"]]
    assert old.summary() == sc.summary()
    meta["parts"]["train"][0].pop("nnz")
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"meta\.json: a shard entry has no 'nnz' field"):
        ShardedCorpus.load(copy)


def _tiny_corpus_file(path: Path, n: int = 40, word: str = "alpha") -> Path:
    rng = np.random.default_rng(0)
    vocab = [word, "beta", "gamma", "delta", "epsilon", "zeta"]
    lines = [" ".join(rng.choice(vocab, size=6)) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_preparing_into_an_existing_corpus_replaces_it_atomically(tmp_path):
    out = tmp_path / "corpus"
    first, _ = prepare_sharded(_tiny_corpus_file(tmp_path / "a.txt"), Preprocessor(), out, shard_size=10,
                               valid_size=0.2, test_size=0.2)
    assert "alpha" in first.vocabulary
    (out / "stale-marker").write_text("from the first corpus")
    old_shard_names = {p.name for p in (out / "shards").iterdir()}
    second, _ = prepare_sharded(_tiny_corpus_file(tmp_path / "b.txt", n=25, word="omega"), Preprocessor(), out,
                                shard_size=100, valid_size=0.0, test_size=0.0)
    assert not (out / "stale-marker").exists()
    assert "omega" in second.vocabulary and "alpha" not in second.vocabulary
    assert ShardedCorpus.load(out).vocabulary == second.vocabulary
    new_shard_names = {p.name for p in (out / "shards").iterdir()}
    assert new_shard_names and not any(n.startswith(("valid", "test")) for n in new_shard_names)
    assert old_shard_names - new_shard_names  # the first corpus's valid/test shards are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "corpus"]  # no .tmp- / .old- left


def test_preparing_over_a_directory_that_is_not_a_corpus_is_refused(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(ValueError, match="not an etm corpus"):
        prepare_sharded(_tiny_corpus_file(tmp_path / "a.txt"), Preprocessor(), out, valid_size=0.0, test_size=0.0)
    assert (out / "thesis.tex").read_text() == "do not delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "precious"]


def test_an_exception_midway_leaves_no_output_and_no_temporary_directory(tmp_path, monkeypatch):
    import etm.corpus.shards

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure while splitting halves")

    monkeypatch.setattr(etm.corpus.shards, "split_halves", boom)
    source = _tiny_corpus_file(tmp_path / "a.txt")
    with pytest.raises(RuntimeError, match="simulated failure"):
        prepare_sharded(source, Preprocessor(), tmp_path / "fresh", shard_size=10, valid_size=0.3, test_size=0.2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    # an existing corpus at the target survives a failed preparation untouched
    monkeypatch.undo()
    kept, _ = prepare_sharded(source, Preprocessor(), tmp_path / "kept", shard_size=10, valid_size=0.0,
                              test_size=0.0)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "kept").rglob("*"))
    monkeypatch.setattr(etm.corpus.shards, "split_halves", boom)
    with pytest.raises(RuntimeError, match="simulated failure"):
        prepare_sharded(source, Preprocessor(), tmp_path / "kept", shard_size=10, valid_size=0.3, test_size=0.2)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "kept").rglob("*")) == before
    assert ShardedCorpus.load(tmp_path / "kept").n_docs("train") == kept.n_docs("train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "kept"]


def test_prepared_corpus_load_of_a_sharded_directory_is_the_in_memory_equivalent(in_memory, sharded):
    pc, _ = in_memory
    sc, _ = sharded
    assert is_sharded_corpus(sc.root)
    loaded = PreparedCorpus.load(sc.root)
    assert isinstance(loaded, PreparedCorpus)
    assert loaded.vocabulary == pc.vocabulary
    assert loaded.valid is None and loaded.valid_halves is None
    for name in ("train", "test"):
        got, want = getattr(loaded, name), getattr(pc, name)
        assert isinstance(got, Corpus)
        g = np.argsort([_line_number(i) for i in got.doc_ids])
        w = np.argsort([_line_number(i) for i in want.doc_ids])
        assert list(got.doc_ids[g]) == list(want.doc_ids[w])
        assert list(got.labels[g]) == list(want.labels[w])
        assert _same_matrix(got.counts[g], want.counts[w])
    first, second = loaded.test_halves
    assert first.shape[0] == second.shape[0] == loaded.test.n_docs - loaded.n_unsplittable["test"]
    assert loaded.n_unsplittable == pc.n_unsplittable
    lengths = np.asarray(loaded.test.counts.sum(axis=1)).ravel()
    assert int(first.sum() + second.sum()) == int(lengths[lengths >= 2].sum())
    assert loaded.settings["preprocessing"] == pc.settings["preprocessing"]



def test_open_corpus_keeps_a_sharded_corpus_on_disk_and_reads_others_into_memory(in_memory, sharded, tmp_path):
    import etm

    pc, _ = in_memory
    sc, _ = sharded
    assert etm.open_corpus is open_corpus
    opened = open_corpus(sc.root)
    assert isinstance(opened, ShardedCorpus) and opened.summary() == sc.summary()
    pc.save(tmp_path / "memory")
    loaded = open_corpus(tmp_path / "memory")
    assert isinstance(loaded, PreparedCorpus) and loaded.summary() == pc.summary()
    with pytest.raises(FileNotFoundError, match="is .* a corpus written by `etm prepare`"):
        open_corpus(tmp_path / "nothing")


def test_prepared_corpus_load_of_an_unknown_layout_says_how_to_open_it(in_memory, tmp_path):
    pc, _ = in_memory
    pc.save(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    (tmp_path / "c" / "meta.json").write_text(json.dumps({**meta, "layout": "columnar"}))
    with pytest.raises(ValueError, match=r"meta\.json: a corpus of layout 'columnar', which PreparedCorpus\.load "
                                         r"cannot read; open it with etm\.shards\.open_corpus"):
        PreparedCorpus.load(tmp_path / "c")

def test_word_totals_are_the_column_sums_of_the_training_matrix(in_memory, sharded):
    pc, _ = in_memory
    sc, _ = sharded
    totals = sc.word_totals()
    assert totals.shape == (len(pc.vocabulary),)
    np.testing.assert_array_equal(totals, np.asarray(pc.train.counts.sum(axis=0)).ravel())
    np.testing.assert_array_equal(sc.word_totals("test"), np.asarray(pc.test.counts.sum(axis=0)).ravel())
    assert sc.summary()["train_tokens"] == pc.train.n_tokens


def _stacked(chunks) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return (sp.vstack([a for a, _ in chunks], format="csr"), sp.vstack([b for _, b in chunks], format="csr"))


def test_both_corpus_kinds_are_corpus_sources_with_the_same_answers(in_memory, sharded):
    pc, _ = in_memory
    sc, _ = sharded
    mem = sc.to_prepared()  # the same documents and halves, in memory
    assert mem.to_prepared() is mem
    for source in (pc, sc, mem):
        assert isinstance(source, CorpusSource)
    assert not isinstance(pc.train, CorpusSource)  # a single Corpus has no parts
    assert pc.n_docs("train") == pc.train.n_docs  # the method beside the part's property
    for part in ("train", "valid", "test"):
        assert sc.n_docs(part) == mem.n_docs(part) == pc.n_docs(part)
        np.testing.assert_array_equal(sc.word_totals(part), mem.word_totals(part))
        np.testing.assert_array_equal(sc.word_totals(part), pc.word_totals(part))
        assert sc.word_totals(part).dtype == pc.word_totals(part).dtype == np.float64
    assert pc.n_docs("valid") == 0 and not pc.word_totals("valid").any()
    assert sc.completion_chunks("valid") == mem.completion_chunks("valid") == []
    chunks = sc.completion_chunks("test")
    assert len(chunks) >= 1 and len(mem.completion_chunks("test")) == 1
    for got, want in zip(_stacked(chunks), mem.completion_chunks("test")[0]):
        assert _same_matrix(got, want)
    for a, b in zip(_stacked(pc.completion_chunks("test")), pc.test_halves):
        assert _same_matrix(a, b)
    assert sc.summary()["test_completion_documents"] == mem.summary()["test_completion_documents"]
    # every document once, with its ids and part, in chunks of at most chunk_size
    for source in (sc, mem):
        seen = list(source.document_chunks(250))
        assert all(chunk.n_docs <= 250 and len(ids) == chunk.n_docs for chunk, ids, _ in seen)
        assert Counter(name for chunk, _, name in seen for _ in range(chunk.n_docs)) == {
            "train": sc.n_docs("train"), "test": sc.n_docs("test")}
        ids = [i for _, chunk_ids, _ in seen for i in chunk_ids]
        assert sorted(ids) == sorted([*pc.train.doc_ids, *pc.test.doc_ids])
        only_test = list(source.document_chunks(10_000, parts=("test",)))
        assert {name for _, _, name in only_test} == {"test"}
    batches = sc.batches(torch.Generator(), 0)
    assert isinstance(batches, ShardedBatches) and batches.n_docs == sc.n_docs()
    in_mem = pc.batches(torch.Generator(), 0)
    assert isinstance(in_mem, InMemoryBatches) and in_mem.n_docs == pc.n_docs()
    for source in (pc, sc):
        with pytest.raises(ValueError, match="part must be one of"):
            source.n_docs("training")
        with pytest.raises(ValueError, match="part must be one of"):
            source.completion_chunks("training")


def test_open_corpus_reads_every_layout(in_memory, sharded, tmp_path):
    from etm.shards import is_corpus_dir

    pc, _ = in_memory
    sc, _ = sharded
    pc.to_authors_format(tmp_path / "authors")
    authors = open_corpus(tmp_path / "authors")
    assert isinstance(authors, PreparedCorpus) and isinstance(authors, CorpusSource)
    assert authors.vocabulary == pc.vocabulary and authors.n_docs("train") == pc.n_docs("train")
    np.testing.assert_array_equal(authors.word_totals("test"), pc.word_totals("test"))
    assert isinstance(open_corpus(tmp_path / "authors", "authors"), PreparedCorpus)
    assert isinstance(open_corpus(sc.root), ShardedCorpus)
    for directory in (tmp_path / "authors", sc.root):
        assert is_corpus_dir(directory)
    assert not is_corpus_dir(tmp_path) and not is_corpus_dir(tmp_path / "nothing")


def test_is_sharded_corpus_only_for_sharded_directories(in_memory, tmp_path):
    pc, _ = in_memory
    pc.save(tmp_path / "plain")
    assert not is_sharded_corpus(tmp_path / "plain")
    assert not is_sharded_corpus(tmp_path)


# --------------------------------------------------------------------------- #
# 3. Batch sources
# --------------------------------------------------------------------------- #
class _TaggedShard:
    """A real shard whose rows carry their global document number (+1) in an extra last column."""

    def __init__(self, shard, offset: int) -> None:
        self.shard, self.offset, self.n_docs = shard, offset, shard.n_docs

    def rows(self, index):
        rows = self.shard.rows(index)
        tag = sp.csr_matrix((np.asarray(index, dtype=np.float32) + self.offset + 1).reshape(-1, 1))
        return sp.hstack([rows, tag], format="csr")


@pytest.fixture(scope="module")
def tagged(sharded):
    sc, _ = sharded
    shards, offset = [], 0
    for s in sc.parts["train"]:
        shards.append(_TaggedShard(s, offset))
        offset += s.n_docs
    full = sp.vstack([s.matrix() for s in sc.parts["train"]], format="csr")
    return shards, full


def _ids_of(batch: sp.csr_matrix, full: sp.csr_matrix) -> np.ndarray:
    ids = batch[:, -1].toarray().ravel().astype(np.int64) - 1
    assert _same_matrix(batch[:, :-1], full[ids])  # every row is the document it claims to be
    return ids


def test_csr_shard_rows_equal_matrix_rows(sharded):
    sc, _ = sharded
    shard = sc.parts["train"][0]
    index = np.array([5, 0, shard.n_docs - 1, 5, 17])
    rows = shard.rows(index)
    assert rows.dtype == np.float32
    assert _same_matrix(rows, shard.matrix()[index])


def test_sharded_batches_one_process_visit_every_document_once(tagged):
    shards, full = tagged
    source = ShardedBatches(shards, seed=11)
    n = full.shape[0]
    for epoch in (0, 1):
        batches = list(source.epoch(epoch, 300))
        assert len(batches) == source.n_steps(300) == math.ceil(n / 300)
        assert [b.shape[0] for b in batches[:-1]] == [300] * (len(batches) - 1)
        assert batches[-1].shape[0] == n - 300 * (len(batches) - 1)
        ids = np.concatenate([_ids_of(b, full) for b in batches])
        assert sorted(ids.tolist()) == list(range(n))
    first = np.concatenate([_ids_of(b, full) for b in source.epoch(0, 300)])
    second = np.concatenate([_ids_of(b, full) for b in source.epoch(1, 300)])
    assert not np.array_equal(first, second)  # reshuffled every epoch


def test_sharded_batches_real_shards_give_every_row_once(sharded):
    sc, _ = sharded
    source = ShardedBatches(sc.parts["train"], seed=0)
    rows = [key for b in source.epoch(0, 256) for key in _row_keys(b)]
    full = sp.vstack([s.matrix() for s in sc.parts["train"]], format="csr")
    assert Counter(rows) == Counter(_row_keys(full))


def test_sharded_batches_two_processes_are_disjoint_and_in_step(tagged):
    shards, full = tagged
    source = ShardedBatches(shards, seed=5)
    starts = np.cumsum([0] + [s.n_docs for s in shards])
    shards_of_rank0 = []
    for epoch in range(4):
        steps = source.n_steps(300, world=2, epoch=epoch)
        assert steps >= 1
        per_rank = [list(source.epoch(epoch, 300, rank=r, world=2)) for r in (0, 1)]
        assert [len(b) for b in per_rank] == [steps, steps]
        assert all(b.shape[0] == 150 for batches in per_rank for b in batches)
        ids = [np.concatenate([_ids_of(b, full) for b in batches]) for batches in per_rank]
        assert len(set(ids[0].tolist())) == ids[0].size and len(set(ids[1].tolist())) == ids[1].size
        assert not set(ids[0].tolist()) & set(ids[1].tolist())
        shards_of_rank0.append(frozenset(np.searchsorted(starts, ids[0], side="right").tolist()))
    assert len(set(shards_of_rank0)) > 1  # the deal of shards to ranks changes between epochs


def test_sharded_batches_same_seed_same_batches(tagged):
    shards, full = tagged

    def run(seed):
        return [_ids_of(b, full).tolist() for b in ShardedBatches(shards, seed=seed).epoch(2, 128, rank=1, world=2)]

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_sharded_batches_refuse_more_processes_than_shards(sharded):
    sc, _ = sharded
    source = ShardedBatches(sc.parts["train"], seed=0)
    n_shards = len(sc.parts["train"])
    assert source.n_steps(100, world=n_shards) >= 1
    with pytest.raises(ValueError, match=rf"{n_shards} training shards but {n_shards + 1} processes.*--shard-size"):
        source.n_steps(100, world=n_shards + 1)
    with pytest.raises(ValueError, match="--shard-size"):
        list(source.epoch(0, 100, rank=0, world=n_shards + 1))


@pytest.mark.parametrize("n_docs", [1000, 1001])
def test_in_memory_batches_two_ranks_together_take_the_one_process_batches(n_docs):
    counts = sp.csr_matrix(np.arange(1, n_docs + 1, dtype=np.float32).reshape(-1, 1))  # row i holds i + 1

    def gen():
        g = torch.Generator()
        g.manual_seed(42)
        return g

    single, rank0, rank1 = InMemoryBatches(counts, gen()), InMemoryBatches(counts, gen()), InMemoryBatches(counts,
                                                                                                           gen())
    for epoch in range(2):
        whole = list(single.epoch(epoch, 100))
        parts = list(rank0.epoch(epoch, 100, rank=0, world=2)), list(rank1.epoch(epoch, 100, rank=1, world=2))
        steps = rank0.n_steps(100, world=2)
        assert len(parts[0]) == len(parts[1]) == steps
        assert len(whole) == steps == 10  # a last batch of one document is skipped, by one process or two
        for step in range(steps):
            a = parts[0][step].toarray().ravel()
            b = parts[1][step].toarray().ravel()
            assert a.size == b.size == 50
            assert sorted(np.concatenate([a, b]).tolist()) == sorted(whole[step].toarray().ravel().tolist())
        seen = sorted(np.concatenate([b.toarray().ravel() for b in whole]).tolist())
        assert len(seen) == 1000 and set(seen) <= set(range(1, n_docs + 1)) and len(set(seen)) == 1000


# --------------------------------------------------------------------------- #
# 4. TopicModel on a ShardedCorpus
# --------------------------------------------------------------------------- #
def _small_model(**extra):
    from etm import TopicModel

    return TopicModel(n_topics=5, hidden_size=32, embedding_size=16, epochs=2, device="cpu", random_state=7,
                      **extra)


@pytest.fixture(scope="module")
def fitted_on_shards(sharded):
    sc, _ = sharded
    return _small_model().fit(sc)


def test_fit_on_a_sharded_corpus_is_deterministic(sharded, fitted_on_shards):
    sc, _ = sharded
    again = _small_model().fit(sc)
    losses = [h["loss"] for h in fitted_on_shards.history_]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses == [h["loss"] for h in again.history_]
    assert fitted_on_shards.vocabulary_ == sc.vocabulary
    np.testing.assert_array_equal(fitted_on_shards.topic_word_, again.topic_word_)


def test_background_model_on_a_sharded_corpus(sharded, in_memory):
    from etm.model import log_word_frequency

    sc, _ = sharded
    pc, _ = in_memory
    est = _small_model(background=True, decoder="mixture").fit(sc)
    assert all(np.isfinite(h["loss"]) for h in est.history_)
    expected = log_word_frequency(pc.train.counts)
    assert torch.allclose(est.model_.background.cpu(), expected)
    theta = est.transform(pc.test.subset(range(20)))
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_on_shards_equals_evaluate_in_memory(fitted_on_shards, sharded, in_memory):
    sc, _ = sharded
    pc, _ = in_memory
    on_shards = fitted_on_shards.evaluate(sc)
    in_mem = fitted_on_shards.evaluate(pc.train)
    assert np.isfinite(on_shards["coherence"])
    assert on_shards["coherence"] == pytest.approx(in_mem["coherence"], abs=1e-9)
    assert on_shards["diversity"] == in_mem["diversity"]


def test_perplexity_on_shards_equals_perplexity_in_memory(fitted_on_shards, sharded):
    sc, _ = sharded
    mem = sc.to_prepared()  # the same halves, in memory
    for per in ("document", "token"):
        on_shards = fitted_on_shards.perplexity(sc, per=per)
        assert np.isfinite(on_shards) and on_shards > 1
        assert on_shards == pytest.approx(fitted_on_shards.perplexity(mem, per=per), rel=1e-9)
    scores = fitted_on_shards.evaluate(sc, sc)
    assert scores == pytest.approx(fitted_on_shards.evaluate(mem, mem), rel=1e-9)
    assert scores["completion_documents"] == sc.summary()["test_completion_documents"]
    assert scores["perplexity_per_token"] == pytest.approx(fitted_on_shards.perplexity(sc, per="token"), rel=1e-12)
    with pytest.raises(ValueError, match="the corpus has no valid halves to score"):
        fitted_on_shards.perplexity(sc, part="valid")


# --------------------------------------------------------------------------- #
# 5. The command line on shards
# --------------------------------------------------------------------------- #
def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cli_run(small_news, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_shards")
    corpus, model = root / "corpus", root / "model"
    assert main(["prepare", str(small_news), "-o", str(corpus), "--shard-size", "150", "--label-field", "label",
                 "--split-field", "split", "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5", "--quiet"]) == 0
    assert main(["train", str(corpus), "-o", str(model), "--num-topics", "5", "--epochs", "2", "--t-hidden-size",
                 "32", "--rho-size", "16", "--device", "cpu", "--quiet"]) == 0
    raw = root / "raw.jsonl"
    records = []
    with gzip.open(small_news, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == 60:
                break
            records.append({"text": json.loads(line)["text"]})
    records[10]["text"] = ""  # an empty document still gets a row
    _write_jsonl(raw, records)
    return root


def test_cli_prepare_writes_a_sharded_corpus(cli_run):
    sc = ShardedCorpus.load(cli_run / "corpus")
    assert len(sc.parts["train"]) >= 2 and set(sc.parts) == {"train", "valid", "test"}
    assert sc.settings["shard_size"] == 150 and sc.settings["split_from"] == "given"
    assert sc.settings["preprocessing"]["strip_newsgroup"] is True


def test_cli_train_and_evaluate_on_shards(cli_run, capsys):
    history = json.loads((cli_run / "model" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    code, out, _ = _run(capsys, "evaluate", cli_run / "model", cli_run / "corpus", "--json")
    assert code == 0
    result = json.loads(out)
    for key in ("perplexity_per_document", "perplexity_per_token", "coherence", "diversity"):
        assert np.isfinite(result[key]), key
    sc = ShardedCorpus.load(cli_run / "corpus")
    assert result["completion_documents"] == sum(a.n_docs for a, _ in sc.halves["test"])


def _read_csv_theta(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [r[0] for r in rows[1:]], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


def test_cli_transform_sharded_corpus_to_npy_parquet_and_csv(cli_run, capsys):
    sc = ShardedCorpus.load(cli_run / "corpus")
    n_docs = sum(sc.n_docs(name) for name in ("train", "valid", "test"))
    ids = [i for name in ("train", "valid", "test") for s in sc.parts[name] for i in s.doc_ids()]
    outs = {}
    for suffix in ("npy", "parquet", "csv"):
        out = cli_run / f"theta.{suffix}"
        code, _, err = _run(capsys, "transform", cli_run / "model", cli_run / "corpus", "-o", out, "--chunk-size",
                            "64", "--device", "cpu")
        assert code == 0, err
        outs[suffix] = out
    theta = np.load(outs["npy"])
    assert theta.shape == (n_docs, 5) and theta.dtype == np.float32
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, atol=1e-5)

    import pyarrow.parquet as pq

    table = pq.read_table(outs["parquet"])
    assert table.num_rows == n_docs and table.num_columns == 6
    assert table.column(0).to_pylist() == ids
    np.testing.assert_allclose(np.column_stack([table.column(k).to_numpy() for k in range(1, 6)]), theta)

    header, csv_ids, values = _read_csv_theta(outs["csv"])
    assert header[0] == "document" and len(header) == 6
    assert csv_ids == ids and all(i.startswith("line ") for i in csv_ids)
    np.testing.assert_allclose(values, theta, atol=1e-5)
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)


def test_cli_transform_raw_file_streams_across_chunks(cli_run, capsys):
    raw = cli_run / "raw.jsonl"
    small, large = cli_run / "chunked.csv", cli_run / "whole.csv"
    for out, chunk in ((small, "7"), (large, "100000")):
        code, _, err = _run(capsys, "transform", cli_run / "model", raw, "-o", out, "--chunk-size", chunk,
                            "--device", "cpu")
        assert code == 0, err
    _, ids, values = _read_csv_theta(small)
    _, ids_whole, values_whole = _read_csv_theta(large)
    assert ids == ids_whole == [f"line {i}" for i in range(1, 61)]
    assert values.shape == (60, 5)
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(values, values_whole, atol=1e-5)
    npy_small, npy_large = cli_run / "chunked.npy", cli_run / "whole.npy"
    for out, chunk in ((npy_small, "7"), (npy_large, "100000")):
        assert main(["transform", str(cli_run / "model"), str(raw), "-o", str(out), "--chunk-size", chunk,
                     "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.load(npy_small), np.load(npy_large), atol=1e-5)
    assert np.load(npy_small).shape == (60, 5)


def test_cli_shard_size_on_a_prepared_corpus_is_an_error(cli_run, capsys):
    out = cli_run / "again"
    code, _, err = _run(capsys, "prepare", cli_run / "corpus", "-o", out, "--shard-size", "100", "--quiet")
    assert code == 1
    assert "--shard-size streams raw documents" in err and "already prepared corpus" in err
    assert not out.exists()


def test_cli_prepare_sharded_json_summary(small_news, tmp_path, capsys):
    code, out, _ = _run(capsys, "prepare", small_news, "-o", tmp_path / "c", "--shard-size", "1000",
                        "--valid-size", "0", "--test-size", "0", "--split-field", "split", "--min-df", "3",
                        "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["layout"] == "sharded" and summary["train_shards"] == 1
    assert summary["report"]["documents_read"] == 800
    assert summary["train_documents"] + summary["report"]["dropped_empty"]["train"] == 600
    assert os.path.isfile(tmp_path / "c" / "meta.json")
