"""ThetaWriter: chunked theta output round-trips in every format and never leaves half a file behind."""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etm import theta_output
from etm.theta_output import SUPPORTED_SUFFIXES, ThetaWriter

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SEPARATORS = {".csv": ",", ".tsv": "\t"}


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _theta(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Rows that look like topic proportions, with values over many magnitudes to exercise %g."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, 0.1), size=n).astype(np.float32)


def _write_chunks(path: Path, chunks: list[np.ndarray], names: list[str], ids: list[list[str]] | None = None) -> Path:
    with ThetaWriter(path, names) as w:
        for i, chunk in enumerate(chunks):
            w.write(chunk, None if ids is None else ids[i])
        assert w.rows_written == sum(len(c) for c in chunks)
    return path


def _read_text(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=SEPARATORS[path.suffix]))


def _read_back(path: Path) -> tuple[list[str] | None, np.ndarray]:
    """(ids, values) as the file holds them; ids is None for .npy."""
    if path.suffix == ".npy":
        return None, np.load(path, allow_pickle=False)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        values = np.column_stack([table.column(i).to_numpy() for i in range(1, table.num_columns)])
        return table.column(0).to_pylist(), values.reshape(table.num_rows, table.num_columns - 1)
    header, *rows = _read_text(path)
    values = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float64)
    return [r[0] for r in rows], values.reshape(len(rows), len(header) - 1)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _split(theta: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(theta, np.cumsum(sizes)[:-1]) if sizes else []


# --------------------------------------------------------------------------- #
# round trips
# --------------------------------------------------------------------------- #
@settings(max_examples=40, deadline=None)
@given(
    suffix=st.sampled_from(SUPPORTED_SUFFIXES),
    sizes=st.lists(st.integers(0, 25), max_size=8),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_chunks_concatenate_to_the_whole(suffix: str, sizes: list[int], k: int, seed: int) -> None:
    theta = _theta(sum(sizes), k, seed)
    names = [f"topic {j}" for j in range(k)]
    with tempfile.TemporaryDirectory() as d:
        path = _write_chunks(Path(d) / f"theta{suffix}", _split(theta, sizes), names)
        ids, values = _read_back(path)
        assert _leftovers(Path(d)) == []
    assert values.shape == theta.shape
    if suffix in SEPARATORS:
        # exactly the 6-significant-digit text of each float32, and the default ids count on across chunks
        expected = np.array([[float(f"{v:.6g}") for v in row] for row in theta.tolist()]).reshape(theta.shape)
        np.testing.assert_array_equal(values, expected)
        np.testing.assert_allclose(values, theta.astype(np.float64), rtol=5e-6, atol=0)  # float64: subnormals
        assert ids == [str(i) for i in range(len(theta))]
    else:
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, theta)
        if suffix == ".parquet":
            assert ids == [str(i) for i in range(len(theta))]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_ids_are_written(tmp_path: Path, suffix: str) -> None:
    theta = _theta(7, 3)
    ids = [[f"doc-{i}" for i in range(4)], [f"doc-{i}" for i in range(4, 7)]]
    path = _write_chunks(tmp_path / f"t{suffix}", [theta[:4], theta[4:]], ["a", "b", "c"], ids)
    got, _ = _read_back(path)
    assert got == [f"doc-{i}" for i in range(7)]


def test_csv_header_and_layout(tmp_path: Path) -> None:
    theta = np.array([[0.5, 0.25, 0.125], [1e-7, 0.3333333, 2 / 3]], dtype=np.float32)
    path = tmp_path / "t.csv"
    with ThetaWriter(path, ["x", "y", "z"], id_header="doc_id") as w:
        w.write(theta[:1])
        w.write(theta[1:])
    assert path.read_text(encoding="utf-8") == "doc_id,x,y,z\n0,0.5,0.25,0.125\n1,1e-07,0.333333,0.666667\n"


def test_tsv_uses_tabs(tmp_path: Path) -> None:
    path = _write_chunks(tmp_path / "t.tsv", [np.array([[0.5, 0.5]], dtype=np.float32)], ["a", "b"], [["d"]])
    assert path.read_text(encoding="utf-8") == "document\ta\tb\nd\t0.5\t0.5\n"


def test_default_ids_mix_with_given_ids_by_row_number(tmp_path: Path) -> None:
    theta = _theta(5, 2)
    path = _write_chunks(tmp_path / "t.csv", [theta[:2], theta[2:3], theta[3:]], ["a", "b"], [["x", "y"], None, None])
    got, _ = _read_back(path)
    assert got == ["x", "y", "2", "3", "4"]


def test_npy_ignores_ids_and_converts_to_float32(tmp_path: Path) -> None:
    theta = np.random.default_rng(1).random((6, 4))  # float64 in, float32 out
    path = _write_chunks(tmp_path / "t.npy", [theta[:3], theta[3:]], list("abcd"), [list("abc"), list("def")])
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == np.float32 and loaded.shape == (6, 4)
    np.testing.assert_array_equal(loaded, theta.astype(np.float32))
    # the header was rewritten in place: the data starts where a plain np.save puts it
    buf = io.BytesIO()
    np.save(buf, loaded, allow_pickle=False)
    assert path.read_bytes() == buf.getvalue()


def test_npy_header_fallback_copies_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final header were longer than the placeholder, the data is copied after it, block by block."""
    real = theta_output._npy_header

    def longer_final_header(rows: int, k: int) -> bytes:
        header = real(rows, k)
        if rows == 0:
            return header
        body = header[10:-1] + b" " * 64 + b"\n"
        return header[:8] + len(body).to_bytes(2, "little") + body

    monkeypatch.setattr(theta_output, "_npy_header", longer_final_header)
    monkeypatch.setattr(theta_output, "_COPY_BLOCK", 100)  # many blocks
    theta = _theta(50, 5)
    path = _write_chunks(tmp_path / "t.npy", [theta[:20], theta[20:]], list("abcde"))
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), theta)
    assert _leftovers(tmp_path) == []


def test_parquet_schema(tmp_path: Path) -> None:
    path = _write_chunks(tmp_path / "t.parquet", [_theta(3, 2), _theta(2, 2, 1)], ["sports", "politics"])
    schema = pq.read_schema(path)
    assert schema.names == ["document", "sports", "politics"]
    assert [str(t) for t in schema.types] == ["string", "float", "float"]
    assert pq.ParquetFile(path).metadata.num_rows == 5


# --------------------------------------------------------------------------- #
# quoting
# --------------------------------------------------------------------------- #
_awkward = st.text(alphabet=st.sampled_from(list('ab ,\t"\n\r;\'é')), max_size=6)


@settings(max_examples=60, deadline=None)
@given(suffix=st.sampled_from([".csv", ".tsv"]), names=st.lists(_awkward, min_size=1, max_size=3),
       ids=st.lists(_awkward, min_size=1, max_size=4), id_header=_awkward)
def test_awkward_names_and_ids_survive_a_csv_reader(suffix: str, names: list[str], ids: list[str],
                                                    id_header: str) -> None:
    theta = _theta(len(ids), len(names))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"t{suffix}"
        with ThetaWriter(path, names, id_header=id_header) as w:
            w.write(theta, ids)
        rows = _read_text(path)
    assert rows[0] == [id_header, *names]
    assert [r[0] for r in rows[1:]] == ids


def test_quoting_is_the_csv_way(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with ThetaWriter(path, ['say "hi"', "a,b"]) as w:
        w.write(np.array([[1, 0]], dtype=np.float32), ["x,y"])
        w.write(np.array([[0, 1]], dtype=np.float32), ['he said "no"\nthen left'])
    assert path.read_text(encoding="utf-8") == (
        'document,"say ""hi""","a,b"\n"x,y",1,0\n"he said ""no""\nthen left",0,1\n'
    )
    tsv = tmp_path / "t.tsv"
    with ThetaWriter(tsv, ["a,b", "c\td"]) as w:  # a comma needs no quotes in a TSV
        w.write(np.array([[1, 0]], dtype=np.float32))
    assert tsv.read_text(encoding="utf-8") == 'document\ta,b\t"c\td"\n0\t1\t0\n'


# --------------------------------------------------------------------------- #
# atomicity
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_exception_leaves_no_output_and_no_temp_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    with pytest.raises(RuntimeError, match="boom"):
        with ThetaWriter(path, ["a", "b"]) as w:
            w.write(_theta(5, 2))
            assert _leftovers(tmp_path) != []  # rows go to a temporary file beside the output
            assert not path.exists()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_exception_keeps_the_previous_output(tmp_path: Path, suffix: str) -> None:
    path = _write_chunks(tmp_path / f"t{suffix}", [_theta(3, 2)], ["a", "b"])
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with ThetaWriter(path, ["a", "b"]) as w:
            w.write(_theta(10, 2, seed=5))
            raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_close_replaces_the_previous_output(tmp_path: Path, suffix: str) -> None:
    path = _write_chunks(tmp_path / f"t{suffix}", [_theta(3, 2)], ["a", "b"])
    _write_chunks(path, [_theta(4, 2, seed=9)], ["a", "b"])
    _, values = _read_back(path)
    assert values.shape == (4, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failed_write_aborts_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    w = ThetaWriter(path, ["a"])
    with pytest.raises(UnicodeEncodeError):
        w.write(np.ones((1, 1), dtype=np.float32), ["\ud800"])  # a lone surrogate cannot be UTF-8
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="aborted"):
        w.close()


def test_abort_is_idempotent_and_closed_output_survives_it(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    w = ThetaWriter(path, ["a"])
    w.write(np.ones((2, 1), dtype=np.float32))
    assert w.close() == path
    assert w.close() == path
    w.abort()
    assert np.load(path).shape == (2, 1)
    w2 = ThetaWriter(tmp_path / "u.csv", ["a"])
    w2.abort()
    w2.abort()
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_output_gets_ordinary_permissions(tmp_path: Path) -> None:
    path = _write_chunks(tmp_path / "t.csv", [_theta(1, 1)], ["a"])
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = _write_chunks(tmp_path / "a" / "b" / "t.csv", [_theta(1, 1)], ["a"])
    assert path.is_file()


# --------------------------------------------------------------------------- #
# empty output
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_empty_text_output_is_just_the_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    with ThetaWriter(path, ["a", "b"]) as w:
        w.write(np.zeros((0, 2), dtype=np.float32))
    assert w.rows_written == 0
    assert path.read_text(encoding="utf-8") == SEPARATORS[suffix].join(["document", "a", "b"]) + "\n"


def test_empty_npy_has_zero_rows(tmp_path: Path) -> None:
    with ThetaWriter(tmp_path / "t.npy", ["a", "b", "c"]):
        pass
    loaded = np.load(tmp_path / "t.npy", allow_pickle=False)
    assert loaded.shape == (0, 3) and loaded.dtype == np.float32


def test_empty_parquet_has_the_schema(tmp_path: Path) -> None:
    with ThetaWriter(tmp_path / "t.parquet", ["a", "b"]):
        pass
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.num_rows == 0 and table.column_names == ["document", "a", "b"]


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_rejected_chunks_leave_the_writer_usable(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    with ThetaWriter(path, ["a", "b", "c"]) as w:
        with pytest.raises(ValueError, match=r"theta has 2 columns but 3 column names"):
            w.write(np.zeros((4, 2), dtype=np.float32))
        with pytest.raises(ValueError, match=r"2-D"):
            w.write(np.zeros(3, dtype=np.float32))
        with pytest.raises(ValueError, match=r"got 2 ids for 4 rows"):
            w.write(np.zeros((4, 3), dtype=np.float32), ["x", "y"])
        with pytest.raises(TypeError, match="real numbers"):
            w.write(np.array([["a", "b", "c"]]))
        w.write(_theta(2, 3))
    assert w.rows_written == 2
    _, values = _read_back(path)
    assert values.shape == (2, 3)


@pytest.mark.parametrize("name", ["theta.txt", "theta.csv.gz", "theta", "theta.json"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported suffix") as info:
        ThetaWriter(tmp_path / name, ["a"])
    message = str(info.value)
    assert str(tmp_path / name) in message
    assert all(s in message for s in SUPPORTED_SUFFIXES)
    assert list(tmp_path.iterdir()) == []


def test_suffix_case_is_ignored(tmp_path: Path) -> None:
    path = _write_chunks(tmp_path / "T.NPY", [_theta(2, 2)], ["a", "b"])
    assert np.load(path).shape == (2, 2)


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_write_after_close_is_an_error(tmp_path: Path, suffix: str) -> None:
    w = ThetaWriter(tmp_path / f"t{suffix}", ["a"])
    w.close()
    with pytest.raises(ValueError, match="already closed"):
        w.write(np.ones((1, 1), dtype=np.float32))
    w2 = ThetaWriter(tmp_path / f"u{suffix}", ["a"])
    w2.abort()
    with pytest.raises(ValueError, match="already aborted"):
        w2.write(np.ones((1, 1), dtype=np.float32))


def test_parquet_needs_unique_column_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'sports' appears twice"):
        ThetaWriter(tmp_path / "t.parquet", ["sports", "politics", "sports"])
    with pytest.raises(ValueError, match=r"'document' appears twice"):
        ThetaWriter(tmp_path / "t.parquet", ["document", "politics"])
    assert list(tmp_path.iterdir()) == []
    # text formats keep duplicate names as they are
    path = _write_chunks(tmp_path / "t.csv", [_theta(1, 2)], ["x", "x"])
    assert path.read_text(encoding="utf-8").splitlines()[0] == "document,x,x"


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"writing \.parquet needs pyarrow: pip install pyarrow"):
        ThetaWriter(tmp_path / "t.parquet", ["a"])
    assert list(tmp_path.iterdir()) == []


def test_strings_where_sequences_belong(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="column_names"):
        ThetaWriter(tmp_path / "t.csv", "abc")
    with ThetaWriter(tmp_path / "t.csv", ["a"]) as w, pytest.raises(TypeError, match="ids"):
        w.write(np.ones((1, 1), dtype=np.float32), "x")


def test_directory_as_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(IsADirectoryError):
        ThetaWriter(tmp_path / "out.csv", ["a"])


# -- errors name the output the caller gave, never the temporary file beside it -----------------------
def _says(message: str) -> str:
    """A ``match`` pattern for exactly ``message``."""
    return "^" + re.escape(message) + "$"


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for target in (blocker / "t.csv", blocker / "sub" / "t.npy"):
        expected = f"cannot write topic proportions to {target}: {blocker} is a file, not a directory; " \
                   "choose another output path"
        with pytest.raises(NotADirectoryError, match=_says(expected)):
            ThetaWriter(target, ["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".parquet"])
def test_unwritable_directory_is_found_when_the_writer_opens(tmp_path: Path, monkeypatch, suffix: str) -> None:
    target = tmp_path / "out" / f"theta{suffix}"

    def refuse(*args, dir, prefix, suffix, **kwargs):  # what the OS says: it names the temporary file
        raise PermissionError(13, "Permission denied", str(Path(dir) / f"{prefix}abc123{suffix}"))

    monkeypatch.setattr(theta_output.tempfile, "NamedTemporaryFile", refuse)
    expected = f"cannot write topic proportions to {target}: its directory {target.parent} is not writable " \
               "(Permission denied); choose another output path"
    with pytest.raises(PermissionError, match=_says(expected)) as info:
        ThetaWriter(target, ["a"])
    assert info.value.errno == 13


def test_a_directory_the_system_refuses_is_named_by_the_target() -> None:
    """/proc takes no new files, not even from root: the error names the output, never its temporary file."""
    with pytest.raises(OSError) as info:
        ThetaWriter(Path("/proc/etm-theta.csv"), ["a"])
    assert str(info.value).startswith("cannot write topic proportions to /proc/etm-theta.csv")
    assert ".tmp" not in str(info.value)


def test_directory_that_cannot_be_created(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "new" / "t.csv"

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    expected = f"cannot write topic proportions to {target}: cannot create its directory {target.parent} " \
               "(Permission denied)"
    with pytest.raises(PermissionError, match=_says(expected)):
        ThetaWriter(target, ["a"])


def test_failure_while_writing_names_the_output(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    writer = ThetaWriter(target, ["a"])

    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    writer._fh.close()
    writer._fh = FullDisk()
    expected = f"cannot write topic proportions to {target}: No space left on device"
    with pytest.raises(OSError, match=_says(expected)):
        writer.write(_theta(2, 1))
    assert list(tmp_path.iterdir()) == []


def test_failure_at_close_names_the_output(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "t.npy"
    writer = ThetaWriter(target, ["a"])
    writer.write(_theta(2, 1))

    def cross_device(src, dst):  # the OS error names both files
        raise OSError(18, "Invalid cross-device link", str(src), str(dst))

    monkeypatch.setattr(theta_output.os, "replace", cross_device)
    expected = f"cannot write topic proportions to {target}: Invalid cross-device link"
    with pytest.raises(OSError, match=_says(expected)):
        writer.close()
    assert list(tmp_path.iterdir()) == []
