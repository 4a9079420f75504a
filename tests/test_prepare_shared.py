"""The pieces both prepare pipelines share: Preprocessor's public vocabulary methods and the split rules."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from etm.preprocessing import Preprocessor
from etm.readers import draw_split, drawn_from_train
from etm.shards import vocabulary_from_counts

SRC = Path(__file__).resolve().parents[1] / "src" / "etm"

TEXTS = [
    "apple banana cherry apple", "banana cherry date", "cherry date elder fig", "apple fig grape",
    "grape grape honey", "banana honey iris", "iris jade kiwi apple", "kiwi lemon mango banana",
    "mango nectar olive", "olive plum quince apple", "plum quince rye", "rye sage apple banana",
]


def _frequencies(pre: Preprocessor, texts: list[str]) -> tuple[Counter[str], Counter[str]]:
    analyze = pre.analyzer()
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for text in texts:
        tokens = analyze(text)
        df.update(set(tokens))
        tf.update(tokens)
    return df, tf


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"min_df": 2},
        {"max_df": 0.3},
        {"min_df": 0.1, "max_df": 5},
        {"max_features": 5},  # many ties at count 2: the vectorizer's own tie order
        {"max_features": 3, "min_df": 2},
    ],
)
def test_prune_vocabulary_keeps_what_countvectorizer_keeps(params):
    pre = Preprocessor(stop_words=None, **params)
    df, tf = _frequencies(pre, TEXTS)
    expected = CountVectorizer(stop_words=None, token_pattern=pre.token_pattern, **params).fit(TEXTS)
    assert pre.prune_vocabulary(df, len(TEXTS), tf) == list(expected.get_feature_names_out())
    assert pre.fit(TEXTS).vocabulary_ == list(expected.get_feature_names_out())
    assert vocabulary_from_counts(df, tf, len(TEXTS), pre) == pre.vocabulary_


def test_prune_vocabulary_refuses_an_empty_result_and_max_features_without_term_frequencies():
    with pytest.raises(ValueError, match="empty vocabulary"):
        Preprocessor(min_df=2).prune_vocabulary({"a": 1}, 3)
    with pytest.raises(ValueError, match="term_frequencies"):
        Preprocessor(max_features=1).prune_vocabulary({"a": 1, "b": 1}, 2)


def test_analyzer_strips_newsgroup_text_and_checks_parameters():
    message = "From: a@b.c\nSubject: hi\n\nreal words here\n-- \nsignature"
    assert Preprocessor(stop_words=None, strip_newsgroup=True).analyzer()(message) == ["real", "words", "here"]
    assert "signature" in Preprocessor(stop_words=None).analyzer()(message)
    with pytest.raises(ValueError, match="min_df"):
        Preprocessor(min_df=-1).analyzer()


def test_transform_with_lengths_counts_known_and_all_tokens():
    pre = Preprocessor(stop_words=None).fit_vocabulary(["cat", "sat"])
    counts, lengths = pre.transform_with_lengths(["the cat sat on the cat", "dog"])
    assert counts.toarray().tolist() == [[2, 1], [0, 0]]
    assert lengths.tolist() == [6, 1]
    assert (counts != pre.transform(["the cat sat on the cat", "dog"])).nnz == 0


def test_draw_split_and_drawn_from_train():
    assert [draw_split(u, 0.1, 0.2) for u in (0.0, 0.099, 0.1, 0.29, 0.31, 0.99)] == [1, 1, 2, 2, 0, 0]
    assert draw_split(0.0, 0.0, 0.0) == 0
    assert drawn_from_train(0, 0.1) and not drawn_from_train(0, 0.0) and not drawn_from_train(3, 0.1)


def test_prepare_sharded_uses_only_public_preprocessor_members():
    tree = ast.parse((SRC / "corpus" / "shards.py").read_text(encoding="utf-8"))
    private = sorted(
        {node.attr for node in ast.walk(tree)
         if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
         and node.value.id in ("pre", "preprocessor") and node.attr.startswith("_")}
    )
    assert not private, f"shards.py reaches into Preprocessor's private members: {private}"


def test_no_prepare_function_is_over_120_lines():
    long = []
    for name in ("corpus/shards.py", "corpus/readers.py", "preprocessing.py"):
        for node in ast.walk(ast.parse((SRC / name).read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "prepare" in node.name:
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > 120:
                    long.append(f"{name}:{node.name} ({n} lines)")
    assert not long, long


def test_analyzer_tokens_match_the_fitted_vectorizer():
    pre = Preprocessor().fit(TEXTS)
    analyze = pre.analyzer()
    vec = pre.vectorizer_.build_analyzer()
    assert all(analyze(t) == vec(t) for t in TEXTS)
    assert np.array_equal(pre.transform(TEXTS).toarray().sum(axis=1) > 0, np.ones(len(TEXTS), dtype=bool))


def test_prepare_is_one_entry_point_to_both_pipelines(tmp_path):
    from etm.corpus import PreparedCorpus
    from etm.readers import prepare_corpus, read_documents
    from etm.shards import ShardedCorpus, prepare, prepare_sharded

    source = tmp_path / "docs.txt"
    source.write_text("\n".join(TEXTS * 5) + "\n", encoding="utf-8")
    mem, report = prepare(source, Preprocessor(stop_words=None), output=tmp_path / "mem", random_state=3)
    expected, expected_report = prepare_corpus(read_documents(source), Preprocessor(stop_words=None), random_state=3)
    assert isinstance(mem, PreparedCorpus) and report == expected_report
    assert (mem.train.counts != expected.train.counts).nnz == 0
    assert PreparedCorpus.load(tmp_path / "mem").vocabulary == expected.vocabulary

    sharded, report = prepare(source, Preprocessor(stop_words=None), output=tmp_path / "sh", shard_size=20,
                              chunk_size=7)
    _, expected_report = prepare_sharded(source, Preprocessor(stop_words=None), tmp_path / "sh2", shard_size=20,
                                         chunk_size=7)
    assert isinstance(sharded, ShardedCorpus)
    assert {k: v for k, v in report.items() if k != "corpus"} == {
        k: v for k, v in expected_report.items() if k != "corpus"}
    with pytest.raises(ValueError, match="output"):
        prepare(source, Preprocessor(), shard_size=10)
    with pytest.raises(TypeError, match="chunk_size"):
        prepare(source, Preprocessor(), chunk_size=10)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("shard_size", [None, 20])
def test_etm_prepare_writes_the_files_prepare_writes(tmp_path, capsys, shard_size):
    """`etm prepare` goes through `etm.corpus.prepare` for both layouts, also when --force replaces a corpus."""
    from etm.cli import main
    from etm.corpus import prepare

    source = tmp_path / "docs.txt"
    source.write_text("\n".join(TEXTS * 5) + "\n", encoding="utf-8")
    sharding = ["--shard-size", str(shard_size)] if shard_size else []
    options = {"shard_size": shard_size} if shard_size else {}
    prepare(source, Preprocessor(stop_words=None), output=tmp_path / "library", random_state=3, **options)
    assert main(["prepare", str(source), "-o", str(tmp_path / "cli"), "--stop-words", "none", "--seed", "3",
                 "--quiet", *sharding]) == 0
    expected = _files(tmp_path / "library")
    assert len(expected) >= 4 and _files(tmp_path / "cli") == expected
    # --force over a corpus of the other layout: the new corpus replaces it whole
    other = [] if shard_size else ["--shard-size", "7"]
    assert main(["prepare", str(source), "-o", str(tmp_path / "replaced"), "--seed", "1", "--quiet", *other]) == 0
    assert main(["prepare", str(source), "-o", str(tmp_path / "replaced"), "--stop-words", "none", "--seed", "3",
                 "--quiet", "--force", *sharding]) == 0
    assert _files(tmp_path / "replaced") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli", "docs.txt", "library", "replaced"]  # no temporaries
    capsys.readouterr()
