"""``validate --features`` on bad feature files: one line naming the file, exit 2, never a
traceback, and never a NaN/Inf/complex value scored (issue #11)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from matv73 import save_v73

from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.features import FeatureError, check_features, load_features
from porting.validation.mini import build_mini_market


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return build_mini_market(tmp_path_factory.mktemp("mini") / "market")


@pytest.fixture(scope="module")
def sizes(mini: Path) -> tuple[int, int]:
    data = load_market1501(mini, parts=("query", "gallery"), check_images="none")
    return len(data.query.pids), len(data.gallery.pids)


def _features(sizes: tuple[int, int], dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((sizes[0], dim)).astype(np.float32),
            rng.standard_normal((sizes[1], dim)).astype(np.float32))


def _validate(mini: Path, q: Path, g: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = validate_main(["--root", str(mini), "--features", str(q), str(g), "-q"])
    return rc, capsys.readouterr().err.strip().splitlines()


def _one_clean_line(rc: int, err: list[str], path: Path, *words: str) -> None:
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(path) in err[0], err
    for w in words:
        assert w in err[0], err


def test_good_features_still_score(mini: Path, sizes, tmp_path: Path, capsys) -> None:
    qf, gf = _features(sizes)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf.astype(np.float64))
    rc, err = _validate(mini, tmp_path / "q.npy", tmp_path / "g.npy", capsys)
    assert rc == 0, err


def test_query_and_gallery_of_different_widths(mini: Path, sizes, tmp_path: Path,
                                               capsys) -> None:
    qf, gf = _features(sizes)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf[:, :8])
    rc, err = _validate(mini, tmp_path / "q.npy", tmp_path / "g.npy", capsys)
    _one_clean_line(rc, err, tmp_path / "g.npy", "same width")


@pytest.mark.parametrize("make, words", [
    (lambda q: np.float32(1.0), "0-d"),
    (lambda q: q[0], "1-d"),
    (lambda q: q[None], "3-d"),
    (lambda q: q[:, :0], "empty"),
    (lambda q: np.zeros(q.shape[0], dtype=[("a", "f4"), ("b", "f4")]), "structured"),
    (lambda q: q.astype(np.complex64), "complex"),
    (lambda q: q > 0, "boolean"),
])
def test_bad_arrays_refused(mini: Path, sizes, tmp_path: Path, capsys, make, words) -> None:
    qf, gf = _features(sizes)
    np.save(tmp_path / "q.npy", make(qf))
    np.save(tmp_path / "g.npy", gf)
    rc, err = _validate(mini, tmp_path / "q.npy", tmp_path / "g.npy", capsys)
    _one_clean_line(rc, err, tmp_path / "q.npy", words)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_are_never_scored(mini: Path, sizes, tmp_path: Path, capsys,
                                           bad: float) -> None:
    """One NaN used to move mAP from 34.63 to 29.11 with exit 0."""
    qf, gf = _features(sizes)
    gf[3, 5] = bad
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    rc, err = _validate(mini, tmp_path / "q.npy", tmp_path / "g.npy", capsys)
    _one_clean_line(rc, err, tmp_path / "g.npy", "non-finite", "row 4, column 6")


def test_nan_in_v73_and_v7_mat(tmp_path: Path) -> None:
    ff = np.ones((4, 3), dtype=np.float32)
    ff[1, 2] = np.nan
    save_v73(tmp_path / "a.mat", {"ff": ff})
    scipy.io.savemat(tmp_path / "b.mat", {"ff": ff.astype(np.float64)})
    for name in ("a.mat", "b.mat"):
        with pytest.raises(FeatureError, match=rf"{name}: 1 non-finite value"):
            load_features(tmp_path / name)


def test_float64_beyond_float32_range(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.full((2, 2), 1e300))
    with pytest.raises(FeatureError, match="big.npy: values beyond the float32 range"):
        load_features(tmp_path / "big.npy")


def test_corrupted_npy_header(mini: Path, sizes, tmp_path: Path, capsys) -> None:
    """A damaged header used to end in a tokenize.TokenError traceback."""
    qf, gf = _features(sizes)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    raw = bytearray((tmp_path / "q.npy").read_bytes())
    raw[20] = ord("(")  # inside the header dict: an unbalanced bracket
    (tmp_path / "q.npy").write_bytes(bytes(raw))
    rc, err = _validate(mini, tmp_path / "q.npy", tmp_path / "g.npy", capsys)
    _one_clean_line(rc, err, tmp_path / "q.npy", "header")


def test_truncated_npy_and_header_claiming_more_than_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "q.npy", np.ones((100, 10), dtype=np.float32))
    raw = (tmp_path / "q.npy").read_bytes()
    (tmp_path / "q.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FeatureError, match=r"q.npy: header says \(100, 10\).*truncated"):
        load_features(tmp_path / "q.npy")
    header = io.BytesIO()  # a header claiming 40 GB, over 4 KB of data: refused, not allocated
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10)})
    (tmp_path / "h.npy").write_bytes(header.getvalue() + raw[128:])
    with pytest.raises(FeatureError, match=r"h.npy: header says \(1000000000, 10\)"):
        load_features(tmp_path / "h.npy")


def test_mat_without_a_feature_array(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "s.mat", {"ff": {"a": 1.0}})
    with pytest.raises(FeatureError, match="s.mat: variable 'ff'"):
        load_features(tmp_path / "s.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(FeatureError, match="junk.mat"):
        load_features(tmp_path / "junk.mat")


def test_check_features_rows_and_widths() -> None:
    q, g = torch.zeros(3, 4), torch.zeros(5, 4)
    check_features(q, g, ["q.npy", "g.npy"], 3, 5)
    with pytest.raises(FeatureError, match="g.npy: 5 rows but the dataset's gallery has 6"):
        check_features(q, g, ["q.npy", "g.npy"], 3, 6)
    with pytest.raises(FeatureError, match="g.npy: 2 values per row, but q.npy has 4"):
        check_features(q, torch.zeros(5, 2), ["q.npy", "g.npy"])


def test_mat_reader_crash_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """scipy's MAT v5 reader (C code) segfaulted on a fuzzed feature file (bench/fuzz.py,
    seed 1, features case 1543), killing validate with no message: the project's MAT reader
    runs it in a forked child, and its death becomes one error naming the file."""
    import os
    import signal

    from porting.converters.matfile import v5 as matfile

    scipy.io.savemat(tmp_path / "q.mat", {"ff": np.ones((2, 2))})
    monkeypatch.setattr(matfile, "_scipy_loadmat",
                        lambda path, names: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(FeatureError, match=r"q.mat: .*MAT-file .*crashed.*signal 11"):
        load_features(tmp_path / "q.mat")


def test_damaged_npy_header_warns_nothing(tmp_path: Path, recwarn) -> None:
    """A flipped header byte made numpy's header parser emit a DeprecationWarning (an extra
    stderr line before the error) on top of the error."""
    np.save(tmp_path / "q.npy", np.ones((3, 2), dtype=np.float32))
    raw = bytearray((tmp_path / "q.npy").read_bytes())
    at = raw.index(b"shape")
    raw[at:at + 3] = b"s\\e"
    (tmp_path / "q.npy").write_bytes(bytes(raw))
    with pytest.raises(FeatureError, match="q.npy: not a valid .npy file"):
        load_features(tmp_path / "q.npy")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
