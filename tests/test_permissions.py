"""Files etm writes get the permissions the umask gives (0644 under 022), directories too (0755).

Atomic writes go through temporary files and directories, which Python
creates 0600 / 0700 whatever the umask; each writer must widen them to what a
plain ``open`` / ``mkdir`` would have made before renaming them into place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from etm import _io
from etm.corpus import Corpus
from etm.embeddings import save_word2vec
from etm.model import ETM
from etm.persistence import save_model
from etm.plots import export_pyldavis, plot_top_words, plot_training_curves
from etm.preprocessing import Preprocessor
from etm.shards import prepare_sharded, write_shards
from etm.theta_output import ThetaWriter
from etm.training import TrainingConfig, train

pytestmark = pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")

VOCAB = [f"w{i:02d}" for i in range(24)]


@pytest.fixture
def umask(request):
    """Run the test under the given umask; the previous one is restored afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of everything below ``root`` (not ``root`` itself), by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        out[path.relative_to(root).as_posix() + ("/" if path.is_dir() else "")] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _assert_modes(root: Path, umask: int, *, at_least: int) -> None:
    modes = _modes(root)
    assert len(modes) >= at_least, sorted(modes)
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask
    wrong = {p: oct(m) for p, m in modes.items() if m != (want_dir if p.endswith("/") else want_file)}
    assert not wrong, f"expected files {oct(want_file)} and directories {oct(want_dir)}, got {wrong}"


def _corpus(seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    counts = sp.random(60, len(VOCAB), density=0.3, random_state=seed, format="csr", dtype=np.float64)
    counts.data = rng.integers(1, 5, size=counts.nnz).astype(np.float64)
    counts = counts.astype(np.int32)
    counts[np.asarray(counts.sum(axis=1)).ravel() == 0, 0] = 1
    return Corpus(counts, VOCAB, labels=[f"l{i % 3}" for i in range(60)], doc_ids=[f"d{i}" for i in range(60)])


class _Vectors:  # what save_word2vec reads from gensim's KeyedVectors
    def __init__(self, words: list[str], dim: int) -> None:
        self.index_to_key = list(words)
        self.vectors = np.random.default_rng(0).normal(size=(len(words), dim)).astype(np.float32)


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_everything_etm_writes_follows_the_umask(tmp_path: Path, umask: int) -> None:
    prepared = _corpus().split(valid_size=0.2, test_size=0.2, random_state=0)
    prepared.save(tmp_path / "corpus")
    prepared.to_authors_format(tmp_path / "authors")

    torch.manual_seed(0)
    model = ETM(3, len(VOCAB), 16, 8)
    config = TrainingConfig(epochs=2, batch_size=20, checkpoint_every=1, seed=0)
    train(model, prepared, config, checkpoint_dir=tmp_path / "checkpoints")
    assert (tmp_path / "checkpoints" / "last").is_dir()
    save_model(tmp_path / "model", model, VOCAB)

    write_shards(tmp_path / "shards", VOCAB, [prepared.train.counts], n_train=prepared.train.n_docs,
                 valid=[prepared.valid.counts], shard_size=10)
    text = tmp_path / "docs.txt"
    text.write_text("".join(f"alpha beta gamma delta {'epsilon ' * (i % 3)}\n" for i in range(30)))
    prepare_sharded(text, Preprocessor(min_df=1), tmp_path / "streamed", shard_size=10)
    text.unlink()

    theta = np.full((5, 3), 1 / 3)
    for suffix in (".csv", ".npy", ".parquet"):
        if suffix == ".parquet":
            pytest.importorskip("pyarrow")
        with ThetaWriter(tmp_path / "theta" / f"theta{suffix}", ["t0", "t1", "t2"]) as writer:
            writer.write(theta)

    save_word2vec(_Vectors(VOCAB, 4), tmp_path / "vectors.txt")
    save_word2vec(_Vectors(VOCAB, 4), tmp_path / "vectors.bin", binary=True)

    beta = np.random.default_rng(0).dirichlet(np.ones(len(VOCAB)), size=3)
    plot_top_words(beta, VOCAB, tmp_path / "plots" / "top.png", n_words=4)
    plot_training_curves([{"epoch": 1, "loss": 2.0, "kl": 0.5, "valid_perplexity": 30.0},
                          {"epoch": 2, "loss": 1.5, "kl": 0.4, "valid_perplexity": 25.0}], tmp_path / "plots" / "c.svg")
    export_pyldavis(tmp_path / "ldavis", beta, np.full((prepared.train.n_docs, 3), 1 / 3), prepared.train.counts,
                    VOCAB, html=False)

    _assert_modes(tmp_path, umask, at_least=60)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "temporary files were left behind"


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_umask_is_read_without_being_changed(umask: int) -> None:
    assert _io._current_umask() == umask
    assert _io._umask_mode() == 0o666 & ~umask
    assert _io._umask_mode(is_dir=True) == 0o777 & ~umask
    assert os.umask(umask) == umask  # still in force after the reads


def test_umask_fallback_when_proc_is_unavailable(monkeypatch, tmp_path: Path) -> None:
    real_open = open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise FileNotFoundError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    previous = os.umask(0o027)
    try:
        assert _io._current_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_fix_mode_widens_temporary_files_and_directories(tmp_path: Path, umask: int) -> None:
    import tempfile

    fd, name = tempfile.mkstemp(dir=tmp_path)
    os.close(fd)
    directory = tempfile.mkdtemp(dir=tmp_path)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    _io.fix_mode(name)
    _io.fix_mode(directory)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755


@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_an_existing_private_file_is_replaced_with_the_umask_mode(tmp_path: Path, umask: int) -> None:
    """Rename replaces the old inode: a 0600 file already at the target does not keep its mode."""
    target = tmp_path / "config.json"
    target.write_text("{}")
    target.chmod(0o600)
    _io.atomic_write_text(target, '{"a": 1}')
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_text() == '{"a": 1}'
