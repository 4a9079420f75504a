"""Tests for etm.preprocessing: the Preprocessor wrapper and Usenet clean-up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from etm.preprocessing import Preprocessor, strip_newsgroup_text

DOCS = [
    "The cat sat on the mat with another cat",
    "Dogs chase cats; the dog barked at 3 cats in 2024",
    "A mat, a rug and a carpet",
]


# --------------------------------------------------------------------------- #
# Preprocessor: behaviour
# --------------------------------------------------------------------------- #
def test_fit_transform_shape_dtype_and_column_order():
    pre = Preprocessor()
    counts = pre.fit_transform(DOCS)
    assert sp.isspmatrix_csr(counts)
    assert counts.dtype == np.int32
    assert counts.shape == (3, len(pre.vocabulary_))
    assert pre.vocabulary_ == sorted(pre.vocabulary_)
    cat = pre.vocabulary_.index("cat")
    assert counts[0, cat] == 2
    assert all(isinstance(w, str) for w in pre.vocabulary_)


def test_default_token_pattern_drops_digits_single_letters_and_stop_words():
    pre = Preprocessor().fit(DOCS)
    vocab = set(pre.vocabulary_)
    assert not {"3", "2024", "a", "the", "on", "with", "and", "at"} & vocab
    assert {"cat", "cats", "dog", "dogs", "mat", "rug", "carpet", "barked"} <= vocab


def test_transform_matches_sklearn_count_vectorizer():
    pre = Preprocessor(min_df=1).fit(DOCS)
    new = ["the cat and the dog", "carpet carpet rug unknownword", ""]
    ours = pre.transform(new)
    theirs = pre.vectorizer_.transform(new)
    assert (ours != theirs).nnz == 0
    assert ours.shape == (3, len(pre.vocabulary_))


def test_stop_words_none_list_and_extra():
    assert "the" in Preprocessor(stop_words=None).fit(DOCS).vocabulary_
    custom = Preprocessor(stop_words=["cat", "cats"]).fit(DOCS).vocabulary_
    assert "cat" not in custom and "the" in custom
    extra = Preprocessor(extra_stop_words=["CARPET", "rug"]).fit(DOCS).vocabulary_
    assert "carpet" not in extra and "rug" not in extra and "the" not in extra


def test_min_df_and_max_df_prune_the_vocabulary():
    pre = Preprocessor(min_df=2).fit(DOCS)
    assert pre.vocabulary_ == ["mat"]  # the only word in two documents ("cat" and "cats" are one each)
    pre = Preprocessor(max_df=0.5, stop_words=None).fit(DOCS)
    assert "the" not in pre.vocabulary_ and "carpet" in pre.vocabulary_


def test_max_features_keeps_most_frequent():
    pre = Preprocessor(max_features=2).fit(DOCS)
    assert set(pre.vocabulary_) == {"cat", "cats"}


def test_transform_with_report_counts_unknown_tokens_but_not_stop_words():
    pre = Preprocessor().fit(["apple banana", "banana cherry"])
    counts, n_unknown = pre.transform_with_report(["apple kiwi kiwi and the banana", "the of and"])
    assert n_unknown == 2  # kiwi twice; "and", "the", "of" are stop words
    assert counts.toarray().tolist() == [[1, 1, 0], [0, 0, 0]]


def test_transform_accepts_generators_and_tuples():
    pre = Preprocessor().fit(d for d in DOCS)
    assert pre.transform(tuple(DOCS)).shape[0] == 3


def test_strip_newsgroup_option_removes_headers_before_counting():
    text = "From: alice@example.com\nSubject: rockets\nOrganization: Acme\n\nrockets fly high\n-- \nalice acme"
    pre = Preprocessor(strip_newsgroup=True).fit([text, "rockets land softly"])
    assert "organization" not in pre.vocabulary_
    assert "acme" not in pre.vocabulary_ and "alice" not in pre.vocabulary_
    assert "rockets" in pre.vocabulary_


def test_settings_are_json_and_round_trip():
    pre = Preprocessor(min_df=2, max_df=0.9, stop_words=["x", "y"], extra_stop_words=("foo",), strip_newsgroup=True)
    settings_ = json.loads(json.dumps(pre.settings()))
    again = Preprocessor.from_settings(settings_)
    assert again.settings() == pre.settings()
    assert "min_df=2" in repr(again)


def test_settings_turn_numpy_numbers_into_json_numbers():
    settings_ = Preprocessor(min_df=np.int64(2), max_df=np.float32(0.5), max_features=np.int32(10)).settings()
    assert json.loads(json.dumps(settings_))["min_df"] == 2


def test_from_settings_with_vocabulary_is_fitted_and_keeps_column_order():
    vocab = ["zebra", "apple", "mango"]
    pre = Preprocessor.from_settings(Preprocessor().settings(), vocabulary=vocab)
    assert pre.vocabulary_ == vocab
    counts, n_unknown = pre.transform_with_report(["apple zebra zebra kiwi"])
    assert counts.toarray().tolist() == [[2, 1, 0]]
    assert n_unknown == 1


def test_fitting_twice_gives_the_same_vocabulary():
    a = Preprocessor(min_df=1).fit(DOCS).vocabulary_
    b = Preprocessor(min_df=1).fit(DOCS).vocabulary_
    assert a == b


# --------------------------------------------------------------------------- #
# Preprocessor: bad input, one test per case
# --------------------------------------------------------------------------- #
def test_bare_string_is_rejected_in_fit():
    with pytest.raises(TypeError, match=r"Preprocessor.fit expects an iterable of documents.*single str.*\[text\]"):
        Preprocessor().fit("the cat sat on the mat")


def test_bare_string_is_rejected_in_transform():
    pre = Preprocessor().fit(DOCS)
    with pytest.raises(TypeError, match=r"Preprocessor.transform_with_report expects an iterable.*single str"):
        pre.transform("the cat")


def test_non_string_document_is_rejected_with_its_index():
    with pytest.raises(TypeError, match=r"document 1 is a float, expected str"):
        Preprocessor().fit(["a cat", float("nan")])


def test_sparse_matrix_input_is_rejected():
    with pytest.raises(TypeError, match=r"expects raw text documents.*already bag-of-words"):
        Preprocessor().fit(sp.csr_matrix(np.ones((2, 2))))


def test_empty_vocabulary_after_filtering_suggests_min_df_and_max_df():
    with pytest.raises(ValueError, match=r"empty vocabulary after filtering 3 documents with min_df=3.*lower min_df"):
        Preprocessor(min_df=3).fit(DOCS)


def test_only_stop_words_gives_empty_vocabulary_error():
    with pytest.raises(ValueError, match=r"empty vocabulary: none of the 2 documents has a token"):
        Preprocessor().fit(["the and of", "42 7 a"])


def test_no_documents_is_an_error():
    with pytest.raises(ValueError, match=r"Preprocessor.fit got no documents"):
        Preprocessor().fit([])


def test_bad_parameter_is_reported_at_fit_not_init():
    pre = Preprocessor(min_df=-1)  # storing is fine
    with pytest.raises(ValueError, match=r"parameter min_df must be an int >= 0.*got -1"):
        pre.fit(DOCS)


def test_unknown_stop_word_list_name():
    with pytest.raises(
        ValueError, match=r"parameter stop_words must be 'english', None or a list of str, got 'french'"
    ):
        Preprocessor(stop_words="french").fit(DOCS)


def test_invalid_token_pattern():
    with pytest.raises(ValueError, match=r"token_pattern '\(' is not valid"):
        Preprocessor(token_pattern="(").fit(DOCS)


def test_transform_before_fit():
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(texts\)"):
        Preprocessor().transform(DOCS)


def test_from_settings_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown preprocessing setting\(s\) \['min_count'\]; known settings are"):
        Preprocessor.from_settings({"min_count": 3})


# --------------------------------------------------------------------------- #
# Property: every analyzer token is either counted or reported unknown
# --------------------------------------------------------------------------- #
WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "the", "and", "x", "42", "Alpha", "BETA"])


@settings(max_examples=50, deadline=None)
@given(
    train=st.lists(st.lists(WORDS, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=6),
    new=st.lists(st.lists(WORDS, max_size=8).map(" ".join), max_size=6),
)
def test_counted_plus_unknown_equals_analyzed_tokens(train, new):
    pre = Preprocessor()
    if not any(w in {"alpha", "beta", "gamma", "delta"} for doc in train for w in doc.lower().split()):
        with pytest.raises(ValueError, match="empty vocabulary"):
            pre.fit(train)
        return
    pre.fit(train)
    counts, n_unknown = pre.transform_with_report(new)
    analyzer = pre.vectorizer_.build_analyzer()
    n_tokens = sum(len(analyzer(doc)) for doc in new)
    assert int(counts.sum()) + n_unknown == n_tokens
    assert counts.shape == (len(new), len(pre.vocabulary_))


# --------------------------------------------------------------------------- #
# strip_newsgroup_text
# --------------------------------------------------------------------------- #
MESSAGE = """From: bob@univ.edu (Bob Smith)
Subject: Re: Shuttle launch
Article-I.D.: univ.1993Apr5
Organization: University of Somewhere
Lines: 12
NNTP-Posting-Host: news.univ.edu

In article <1993Apr4.123@nasa.gov> alice@nasa.gov (Alice) writes:
> The shuttle launch was delayed.
| Another quoted line.

The launch went fine in the end, and the orbiter is healthy.

-- 
Bob Smith   bob@univ.edu   "Per aspera ad astra"
"""  # noqa: W291 (the "-- " signature delimiter has a trailing space)


def test_strip_newsgroup_removes_headers_quotes_and_signature():
    out = strip_newsgroup_text(MESSAGE)
    assert out.strip() == "The launch went fine in the end, and the orbiter is healthy."


def test_strip_newsgroup_leaves_text_without_headers_alone():
    text = "Note: this line looks like a header\n\nbut the text has no mail headers."
    assert strip_newsgroup_text(text) == text


def test_strip_newsgroup_keeps_a_single_line_that_looks_like_a_header():
    assert strip_newsgroup_text("Summary: great talk") == "Summary: great talk"


def test_strip_newsgroup_removes_short_block_after_a_rule():
    text = "real content here\nmore content\n______________\nJohn Doe\nACME Corp\n"
    assert strip_newsgroup_text(text) == "real content here\nmore content"


def test_strip_newsgroup_keeps_long_text_after_a_rule():
    body = "\n".join(f"paragraph line {i}" for i in range(15))
    text = f"intro\n----------\n{body}"
    assert strip_newsgroup_text(text) == text


def test_strip_newsgroup_removes_encoded_binaries_and_keeps_prose():
    uuencoded = "M)B9R&KJZ)EVZ=+ITNKH>?7U=PGU]+\"Q=?72_=\"PU'GT>+,<LORPU86$1EX,8"
    base64 = "irrb7tCwndKsQC+wcTI/Q4+cmq3HrRRTnaIWYjmfaqXPEYRODVFDXc409umVGRJb"
    prose = "a perfectly ordinary sentence that is much longer than forty characters"
    text = f"Here is the picture:\nbegin 644 roman.bmp\n{uuencoded}\n  {base64}  \n{prose}\nshort=token"
    assert strip_newsgroup_text(text) == f"Here is the picture:\nbegin 644 roman.bmp\n{prose}\nshort=token"


def test_strip_newsgroup_rejects_non_str():
    with pytest.raises(TypeError, match="expects a str, got bytes"):
        strip_newsgroup_text(b"From: x")  # type: ignore[arg-type]


def test_quote_removal_agrees_with_scikit_learn():
    twenty = pytest.importorskip("sklearn.datasets._twenty_newsgroups")  # private API: may move
    from etm.preprocessing import _strip_quoting

    for text in (MESSAGE, "he said: no\nfine\n>x\nQuoted from y\nok wrote: z"):
        assert _strip_quoting(text) == twenty.strip_newsgroup_quoting(text)
