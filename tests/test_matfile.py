"""Generic MAT-file reading: v5 (scipy) and v7.3 (HDF5) give one representation."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from matv73 import assert_same, mat_header, save_v73, write_object_standin

from porting.converters.matfile import (
    MatCell,
    MatFormatError,
    MatStruct,
    load_mat,
    mat_variables,
    mat_version,
    to_python,
)

from conftest import FIXTURES

MCN = FIXTURES / "matconvnet"
CAFFENET = MCN / "caffenet_narrow" / "model.mat"
SCIPY_DATA = Path(scipy.io.__file__).parent / "matlab" / "tests" / "data"


def _error(call, *args) -> str:
    """Run ``call`` expecting a one-line MatFormatError; return its message."""
    with pytest.raises(MatFormatError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, ValueError)
    return message


# --------------------------------------------------------------------------------------------
# Values of every supported class
# --------------------------------------------------------------------------------------------


def _every_class() -> dict[str, object]:
    """One value per supported MATLAB class and shape case, in the load_mat representation."""
    rng = np.random.default_rng(0)
    values: dict[str, object] = {
        "d2x3": np.arange(6, dtype=np.float64).reshape(2, 3),
        "single_4d": rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
        "filter_1x1xCxK": rng.standard_normal((1, 1, 3, 2)).astype(np.float32),
        "scalar": np.array([[np.pi]]),
        "logical": np.array([[True, False, True]]),
        "char_row": "bilinear",
        "char_unicode": "héllo \U0001d11e",
        "char_matrix": ["one  ", "two  ", "three"],
        "char_empty": "",
        "empty_double": np.zeros((0, 0)),
        "empty_single_0x3": np.zeros((0, 3), np.float32),
        "empty_logical": np.zeros((1, 0), bool),
        "cell": MatCell((2, 2), [np.array([[1.0]]), "b", np.zeros((0, 0)),
                                 MatCell((1, 2), ["x", np.zeros((0, 0))])]),
        "cell_empty": MatCell((0, 0)),
        "struct": MatStruct(
            ["name", "inner", "list"], (1, 1),
            [{"name": "conv1",
              "inner": MatStruct(["k"], (1, 1), [{"k": np.array([[1.0, 2.0]], np.float32)}]),
              "list": MatCell((1, 3), ["a", "bb", "ccc"])}],
        ),
        "struct_array": MatStruct(
            ["a", "b"], (2, 3),
            [{"a": np.array([[float(k)]]), "b": f"s{k}"} for k in range(6)],
        ),
        "struct_empty": MatStruct(["name", "value"], (0, 1)),
        "struct_nofields": MatStruct((), (1, 1), [{}]),
    }
    for dt in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"):
        values[dt] = np.array([[0, 1], [2, 3], [4, 100]], dtype=dt)
    return values


def test_v73_round_trip_of_every_class(tmp_path: Path) -> None:
    values = _every_class()
    path = tmp_path / "every.mat"
    save_v73(path, values)
    assert mat_version(path) == "7.3"
    assert sorted(mat_variables(path)) == sorted(values)
    back = load_mat(path)
    assert sorted(back) == sorted(values)
    for name, value in values.items():
        assert_same(back[name], value, name)
    # MATLAB semantics, not just a round trip: column-major element order
    assert back["struct_array"][1, 0]["b"] == "s1"
    assert back["struct_array"][0, 1]["b"] == "s2"
    assert back["cell"][1, 0] == "b"
    assert back["single_4d"].flags.f_contiguous


def test_v73_layout_is_matlabs(tmp_path: Path) -> None:
    """What the reader relies on, checked on the raw HDF5 objects of the test writer."""
    path = tmp_path / "layout.mat"
    save_v73(path, _every_class())
    raw = path.read_bytes()
    assert raw[:128] == mat_header() and raw[128:512] == bytes(384)
    assert raw[124:128] == b"\x00\x02IM" and raw[116:124] == bytes(8)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        d = f["d2x3"]
        assert d.shape == (3, 2)  # reversed dims over the same column-major bytes
        np.testing.assert_array_equal(d[()], np.arange(6.0).reshape(2, 3).T)
        tid = d.attrs.get_id("MATLAB_class").get_type()
        assert tid.get_strpad() == h5py.h5t.STR_NULLTERM and tid.get_size() == len("double")
        c = f["char_row"]
        assert c.dtype == np.uint16 and c.shape == (8, 1)
        assert c.attrs["MATLAB_int_decode"] == 2
        assert f["logical"].dtype == np.uint8 and f["logical"].attrs["MATLAB_int_decode"] == 1
        e = f["empty_single_0x3"]
        assert e.dtype == np.uint64 and list(e[()]) == [0, 3] and e.attrs["MATLAB_empty"] == 1
        assert "MATLAB_int_decode" not in f["char_empty"].attrs
        canonical = f["#refs#/a"]
        assert canonical.attrs["MATLAB_class"] == b"canonical empty"
        # MATLAB's c{1,2} is [] -> points to the canonical empty (HDF5 index reversed)
        assert f[f["cell"][()][1, 0]] == canonical
        arr = f["struct_array"]
        assert arr["a"].shape == (3, 2) and len(arr["a"].attrs) == 0
        assert [b"".join(x) for x in arr.attrs["MATLAB_fields"]] == [b"a", b"b"]
        assert f["struct/inner/k"].attrs["H5PATH"] == b"/structinner"  # MATLAB's quirk
        assert "b" in f["#refs#"] and "Z" not in f["#refs#"]


def test_v5_and_v73_give_the_same_representation(tmp_path: Path) -> None:
    rec = np.zeros((1, 2), dtype=[("name", object), ("value", object)])
    rec[0, 0] = ("w", np.ones((3, 1), np.float32))
    rec[0, 1] = ("b", np.zeros((0, 0)))
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0] = "cuDNN"
    cell[0, 1] = np.array([[1, 2]], dtype=np.int32)
    v5 = tmp_path / "v5.mat"
    scipy.io.savemat(v5, {"params": rec, "opts": cell, "flag": np.array([[True]]),
                          "rows": np.array(["ab", "cd"]), "empty": "", "img": np.ones((4, 5, 3))})
    a = load_mat(v5)
    assert isinstance(a["params"], MatStruct) and a["params"].shape == (1, 2)
    assert a["params"][0]["name"] == "w" and a["params"][0]["value"].dtype == np.float32
    assert isinstance(a["opts"], MatCell) and a["opts"].tolist_matlab()[0] == "cuDNN"
    assert a["flag"].dtype == bool and a["rows"] == ["ab", "cd"] and a["empty"] == ""
    assert a["img"].shape == (4, 5, 3)
    v73 = tmp_path / "v73.mat"
    save_v73(v73, a)
    b = load_mat(v73)
    assert_same(dict(sorted(b.items())), dict(sorted(a.items())))


def test_v5_keeps_matlab_classes_and_shapes() -> None:
    """No squeezing: 1x1xCxK filters, Kx1 biases, 1x1 scalars, logicals stay logical."""
    data = load_mat(CAFFENET)
    conv1 = data["layers"].tolist_matlab()[0].scalar()
    filters, bias = conv1["weights"].tolist_matlab()
    assert filters.shape == (11, 11, 3, 12) and filters.dtype == np.float32
    assert bias.shape == (12, 1)
    assert conv1["precious"].dtype == bool and conv1["precious"].shape == (1, 1)
    assert conv1["type"] == "conv" and conv1["stride"].shape == (1, 2)
    fc7 = data["layers"].tolist_matlab()[17].scalar()
    assert fc7["weights"].tolist_matlab()[0].shape == (1, 1, 256, 256)
    norm = data["meta"].scalar()["normalization"].scalar()
    assert norm["averageImage"].shape == (227, 227, 3)


def test_v5_double_stored_as_small_integers_is_double(tmp_path: Path) -> None:
    """MATLAB writes integer-valued doubles as miUINT8 in v6/v7 files; they are still double."""

    def tag(kind: int, payload: bytes) -> bytes:
        return struct.pack("<II", kind, len(payload)) + payload + bytes(-len(payload) % 8)

    def var(name: str, cls: int, flags: int, payload: bytes) -> bytes:
        body = (tag(6, struct.pack("<II", cls | flags, 0)) + tag(5, struct.pack("<2i", 1, 4))
                + tag(1, name.encode()) + tag(2, payload))
        return tag(14, body)

    path = tmp_path / "compact.mat"
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + b"\x00\x01IM"
    path.write_bytes(header + var("pad", 6, 0, bytes([0, 1, 0, 1]))
                     + var("mask", 9, 0x200, bytes([1, 0, 0, 1])))
    data = load_mat(path)
    assert data["pad"].dtype == np.float64 and data["pad"].tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert data["mask"].dtype == bool


def test_selected_variables_and_listing(tmp_path: Path) -> None:
    assert sorted(mat_variables(CAFFENET)) == ["layers", "meta"]
    assert list(load_mat(CAFFENET, ["meta", "absent"])) == ["meta"]
    path = tmp_path / "v73.mat"
    save_v73(path, {"a": np.ones((2, 2)), "b": "x"})
    assert list(load_mat(path, ["b"])) == ["b"]


def test_struct_and_cell_api() -> None:
    s = MatStruct(["n"], (2, 2), [{"n": k} for k in range(4)])
    assert len(s) == 4 and s[1]["n"] == 1 and s[0, 1]["n"] == 2 and s[-1]["n"] == 3
    assert s.values("n") == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        s.scalar()
    with pytest.raises(KeyError):
        s.values("m")
    with pytest.raises(ValueError):
        MatStruct(["n"], (1, 2), [{"n": 1}])
    c = MatCell((2, 2), ["a", "b", "c", "d"])
    assert c[1, 0] == "b" and c.tolist_matlab() == ["a", "b", "c", "d"]
    assert isinstance(c, np.ndarray) and c.dtype == object
    arrays = MatCell((1, 2), [np.ones((2, 2)), np.zeros(3)])
    assert arrays[0, 0].shape == (2, 2)  # arrays are elements, never broadcast


def test_to_python() -> None:
    s = MatStruct(["a", "b", "c", "d", "e"], (1, 1), [{
        "a": np.array([[3.0]]), "b": np.array([[0.0, 1.0, 0.0, 1.0]]),
        "c": np.zeros((0, 0)), "d": MatCell((1, 2), ["x", "y"]),
        "e": np.ones((1, 1, 3)),
    }])
    out = to_python(s)
    assert out["a"] == 3.0 and out["b"] == [0.0, 1.0, 0.0, 1.0] and out["c"] is None
    assert out["d"] == ["x", "y"] and out["e"].shape == (1, 1, 3)
    assert to_python(np.array([[True]])) is True
    assert to_python(MatStruct(["a"], (1, 2), [{"a": "x"}, {"a": "y"}])) == [{"a": "x"},
                                                                              {"a": "y"}]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _opaque_v5(path: Path, name: str, class_name: str) -> None:
    """A level-5 file holding a classdef object, laid out as MATLAB writes it (mxOPAQUE)."""

    def tag(kind: int, payload: bytes) -> bytes:
        return struct.pack("<II", kind, len(payload)) + payload + bytes(-len(payload) % 8)

    inner = (tag(6, struct.pack("<II", 13, 0)) + tag(5, struct.pack("<2i", 6, 1))
             + tag(1, b"") + tag(6, struct.pack("<6I", 0xDD000000, 2, 1, 1, 1, 1)))
    body = (tag(6, struct.pack("<II", 17, 0)) + tag(1, name.encode()) + tag(1, b"MCOS")
            + tag(1, class_name.encode()) + tag(14, inner))
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + b"\x00\x01IM"
    path.write_bytes(header + tag(14, body))


def test_matlab_object_is_refused_with_the_saveobj_hint(tmp_path: Path) -> None:
    v5 = tmp_path / "object_v7.mat"
    _opaque_v5(v5, "net", "dagnn.DagNN")
    for path in (v5,):
        message = _error(load_mat, path)
        assert str(path) in message and "dagnn.DagNN" in message and "'net'" in message
        assert "net.saveobj()" in message
    v73 = tmp_path / "object_v73.mat"
    write_object_standin(v73, "net", "dagnn.DagNN")
    message = _error(load_mat, v73)
    assert str(v73) in message and "dagnn.DagNN" in message and "saveobj" in message


def test_truncated_v5_files(tmp_path: Path) -> None:
    data = CAFFENET.read_bytes()
    for cut in (60, 200, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.mat"
        path.write_bytes(data[:cut])
        assert str(path) in _error(load_mat, path)


def test_truncated_v73_files(tmp_path: Path) -> None:
    full = tmp_path / "full.mat"
    save_v73(full, load_mat(MCN / "vgg16_narrow" / "model.mat"))
    data = full.read_bytes()
    for cut in (300, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.mat"
        path.write_bytes(data[:cut])
        assert str(path) in _error(load_mat, path)


def test_not_mat_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noise = tmp_path / "noise.mat"
    noise.write_bytes(rng.integers(1, 255, 4096, dtype=np.uint8).tobytes())
    assert "not a MAT-file" in _error(load_mat, noise)
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    assert str(empty) in _error(load_mat, empty)
    missing = tmp_path / "missing.mat"
    assert str(missing) in _error(load_mat, missing)
    plain_h5 = tmp_path / "plain.h5"
    with h5py.File(plain_h5, "w") as f:
        f["x"] = np.ones(3)
    assert "HDF5" in _error(load_mat, plain_h5)


def test_unsupported_content(tmp_path: Path) -> None:
    v4 = tmp_path / "v4.mat"
    scipy.io.savemat(v4, {"x": np.ones((2, 2))}, format="4")
    assert "v4" in _error(load_mat, v4)
    cplx = tmp_path / "complex.mat"
    scipy.io.savemat(cplx, {"z": np.array([[1 + 2j]])})
    assert "complex" in _error(load_mat, cplx)
    sparse = tmp_path / "sparse.mat"
    scipy.io.savemat(sparse, {"s": scipy.sparse.eye(3, format="csc")})
    assert "sparse" in _error(load_mat, sparse)


def test_v73_struct_missing_a_listed_field(tmp_path: Path) -> None:
    path = tmp_path / "missing_field.mat"
    save_v73(path, {"meta": MatStruct(["a", "b"], (1, 1), [{"a": "x", "b": "y"}])})
    with h5py.File(path, "r+") as f:
        del f["meta/b"]
    message = _error(load_mat, path)
    assert str(path) in message and "'b'" in message and "meta" in message


# --------------------------------------------------------------------------------------------
# Files written by MATLAB itself (scipy's test data, when the installed scipy ships it)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not SCIPY_DATA.is_dir(), reason="scipy installed without its test data")
def test_matlab_written_files() -> None:
    h5 = load_mat(SCIPY_DATA / "testhdf5_7.4_GLNX86.mat")  # real MATLAB -v7.3
    np.testing.assert_allclose(h5["testdouble"], np.linspace(0, 2 * np.pi, 9)[None, :])
    rows = load_mat(SCIPY_DATA / "teststringarray_7.4_GLNX86.mat")["teststringarray"]
    assert rows == ["one  ", "two  ", "three"]
    cell = load_mat(SCIPY_DATA / "testemptycell_7.4_GLNX86.mat")["testemptycell"]
    assert [e.shape for e in cell.tolist_matlab()] == [(1, 1), (1, 1), (0, 0), (0, 0), (1, 1)]
    big = load_mat(SCIPY_DATA / "big_endian.mat")["floats"]
    assert big.dtype == np.float32 and big.dtype.isnative
    assert "function handle" in _error(load_mat, SCIPY_DATA / "testfunc_7.4_GLNX86.mat")


def test_paths_as_str_and_pathlike() -> None:
    assert mat_version(os.fspath(CAFFENET)) == mat_version(CAFFENET) == "5"
