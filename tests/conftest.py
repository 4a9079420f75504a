"""Shared fixtures: the real corpora in ../shared/data (or $ETM_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _shared_data_dir() -> Path:
    env = os.environ.get("ETM_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Directory of the shared corpora; a missing directory fails loudly, never skips."""
    path = _shared_data_dir()
    if not (path / "20ng-etm").is_dir():
        pytest.fail(
            f"shared data not found at {path}: clone the project beside ../shared or set ETM_SHARED_DATA",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def authors_corpus(shared_data: Path):
    """20 Newsgroups as the ETM authors preprocessed it (V=3072)."""
    from etm.readers import read_authors_format

    return read_authors_format(shared_data / "20ng-etm")


@pytest.fixture(scope="session")
def small_corpus(authors_corpus):
    """A slice of the authors' 20NG: 1500 training documents, the 100 validation documents, 300 test halves."""
    from etm.corpus import PreparedCorpus

    pc = authors_corpus
    small = PreparedCorpus(
        train=pc.train.subset(range(1500)),
        valid=pc.valid,
        test=pc.test.subset(range(300)),
        valid_halves=pc.valid_halves,
        test_halves=(pc.test_halves[0][:300], pc.test_halves[1][:300]),
    )
    return small


@pytest.fixture(scope="session")
def newsgroup_records(shared_data: Path) -> list[dict]:
    """The first 600 training and 200 test messages of raw 20 Newsgroups."""
    import gzip
    import json

    out: list[dict] = []
    counts = {"train": 0, "test": 0}
    limits = {"train": 600, "test": 200}
    with gzip.open(shared_data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if counts[rec["split"]] < limits[rec["split"]]:
                counts[rec["split"]] += 1
                out.append(rec)
            if counts == limits:
                break
    return out


@pytest.fixture(scope="module")
def news_workspace(tmp_path_factory, newsgroup_records) -> Path:
    """A directory per test module holding ``news.jsonl.gz``: ``newsgroup_records`` as a CLI input file."""
    import gzip
    import json

    root = tmp_path_factory.mktemp("news")
    with gzip.open(root / "news.jsonl.gz", "wt", encoding="utf-8") as fh:
        for rec in newsgroup_records:
            fh.write(json.dumps(rec) + "\n")
    return root
