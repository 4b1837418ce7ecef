"""Bad MatConvNet inputs (issue #11): each ends in one ``error:`` line naming the file and
the layer, param or field in MatConvNet's words, exit status 2, no traceback and no output
file. Cases are built in temporary folders from the fixture nets, as .mat v7 (scipy) and
v7.3 (HDF5, tests/matv73.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from matv73 import save_v73

from porting.converters.matconvnet import main as convert_matconvnet
from porting.converters.matfile import MatCell, MatStruct, load_mat

from conftest import FIXTURES
from conftest import refused as _refused

CAFFENET = FIXTURES / "matconvnet/caffenet_narrow/model.mat"  # SimpleNN: conv1 is layers{1}
RESNET = FIXTURES / "matconvnet/resnet50_narrow/model.mat"  # DagNN struct


def _convert(capsys, src: Path, *extra: str) -> tuple[int, str, Path]:
    out = src.parent / "out.pth"
    capsys.readouterr()
    rc = convert_matconvnet([str(src), "-o", str(out), "-q", "--arch", "none", *extra])
    return rc, capsys.readouterr().err, out




def _simplenn_v7(tmp_path: Path, layer: int, **fields) -> Path:
    """The CaffeNet SimpleNN file with fields of ``layers{layer + 1}`` replaced (v7)."""
    mat = scipy.io.loadmat(CAFFENET)
    record = mat["layers"][0, layer]
    for key, value in fields.items():
        record[key][0, 0] = value
    path = tmp_path / "edited.mat"
    scipy.io.savemat(path, {"layers": mat["layers"], "meta": mat["meta"]})
    return path


def _simplenn_v73(tmp_path: Path, layer: int, **fields) -> Path:
    """The same edit written as a v7.3 (HDF5) MAT-file."""
    variables = load_mat(CAFFENET)
    element = variables["layers"][0, layer].scalar()
    element.update(fields)
    path = tmp_path / "edited73.mat"
    save_v73(path, variables)
    return path


WRITERS = {"v7": _simplenn_v7, "v7.3": _simplenn_v73}


# ------------------------------------------------------------------------- block properties


@pytest.mark.parametrize("version", sorted(WRITERS))
@pytest.mark.parametrize("key", ["pad", "stride"])
def test_pad_or_stride_with_an_extra_dimension(tmp_path, capsys, version, key) -> None:
    # A 2x2 matrix reached conv2d as nested lists: TypeError.
    src = WRITERS[version](tmp_path, 0, **{key: np.ones((2, 2))})
    _refused(_convert(capsys, src), src.name, "'conv1' (dagnn.Conv)", f"block.{key}",
             "a 2x2 array")


@pytest.mark.parametrize("version", sorted(WRITERS))
@pytest.mark.parametrize("key", ["pad", "dilate"])
def test_inf_in_pad_or_dilate(tmp_path, capsys, version, key) -> None:
    # Inf ended in an OverflowError in as_pair / _pad4.
    src = WRITERS[version](tmp_path, 0, **{key: np.array([[math.inf]])})
    _refused(_convert(capsys, src), src.name, "'conv1' (dagnn.Conv)", f"block.{key}", "inf")


def test_fractional_pad_is_refused_not_truncated(tmp_path, capsys) -> None:
    # 1.5 used to become pad 1 without a word.
    src = _simplenn_v7(tmp_path, 0, pad=np.array([[1.5]]))
    _refused(_convert(capsys, src), "edited.mat", "'conv1'", "block.pad", "1.5")


def test_zero_pool_stride_is_refused(tmp_path, capsys) -> None:
    src = _simplenn_v7(tmp_path, 2, stride=np.array([[0.0, 2.0]]))
    _refused(_convert(capsys, src), "edited.mat", "'pool1' (dagnn.Pooling)", "block.stride",
             ">= 1")


def test_pool_window_larger_than_its_input(tmp_path, capsys) -> None:
    src = _simplenn_v7(tmp_path, 2, pool=np.array([[99.0, 99.0]]))
    _refused(_convert(capsys, src), "edited.mat", "'pool1' (dagnn.Pooling)", "poolSize",
             "1x12x55x55")


def test_nan_lrn_param_is_refused(tmp_path, capsys) -> None:
    src = _simplenn_v7(tmp_path, 3, param=np.array([[5.0, 1.0, math.nan, 0.75]]))
    _refused(_convert(capsys, src), "edited.mat", "'norm1' (dagnn.LRN)", "block.param")


# ------------------------------------------------------------------------- params


@pytest.mark.parametrize("version", sorted(WRITERS))
def test_nonfinite_filter_is_refused_naming_the_param(tmp_path, capsys, version) -> None:
    weights = load_mat(CAFFENET)["layers"][0, 0].scalar()["weights"]
    bad = np.array(weights[0, 0], copy=True)
    bad[0, 0, 0, 0] = math.nan
    cell = scipy_cell([bad, weights[0, 1]]) if version == "v7" else type(weights)(
        weights.shape, [bad, weights[0, 1]])
    src = WRITERS[version](tmp_path, 0, weights=cell)
    _refused(_convert(capsys, src), src.name, "'conv1f'", "non-finite", "--allow-nonfinite")


def test_allow_nonfinite_converts_and_says_so(tmp_path, capsys) -> None:
    weights = load_mat(CAFFENET)["layers"][0, 0].scalar()["weights"]
    bias = np.array(weights[0, 1], copy=True)
    bias[3] = math.inf
    src = _simplenn_v7(tmp_path, 0, weights=scipy_cell([weights[0, 0], bias]))
    rc, err, out = _convert(capsys, src, "--allow-nonfinite")
    assert rc == 0 and out.exists(), err
    assert "--allow-nonfinite" in err and "'conv1b'" in err and "Traceback" not in err
    state = torch.load(out, weights_only=True)["state_dict"]
    assert torch.isinf(state["params.conv1b"]).sum() == 1


def scipy_cell(items: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


# ------------------------------------------------------------------------- DagNN structure


def test_dagnn_layer_without_inputs_is_refused(tmp_path, capsys) -> None:
    # The graph op indexed an input that is not there (IndexError).
    variables = load_mat(RESNET)
    relu = next(e for e in variables["layers"] if e["type"] == "dagnn.ReLU")
    relu["inputs"] = MatCell((1, 0))
    src = tmp_path / "dag.mat"
    save_v73(src, variables)
    _refused(_convert(capsys, src), "dag.mat", f"'{relu['name']}' (dagnn.ReLU)",
             "takes exactly 1 input, got 0")


# ------------------------------------------------------------------------- resources


def test_huge_image_size_is_refused_with_the_estimate_and_the_limit(tmp_path, capsys) -> None:
    # meta.normalization.imageSize sets the dry run's input: 60000 x 60000 is 43 GB.
    mat = scipy.io.loadmat(CAFFENET)
    mat["meta"][0, 0]["normalization"][0, 0]["imageSize"] = np.array([[60000.0, 60000, 3, 1]])
    src = tmp_path / "big.mat"
    scipy.io.savemat(src, {"layers": mat["layers"], "meta": mat["meta"]})
    line = _refused(_convert(capsys, src), "big.mat", "60000x60000", "--max-memory", "4 GB")
    assert float(line.split("about ")[1].split(" GB")[0]) >= 43


def test_max_memory_flag_sets_the_limit(tmp_path, capsys) -> None:
    src = tmp_path / "model.mat"
    src.write_bytes(CAFFENET.read_bytes())
    _refused(_convert(capsys, src, "--max-memory", "0.0001"), "model.mat",
             "over the limit of 0.0001 GB")
    rc, err, out = _convert(capsys, src, "--max-memory", "0.5")
    assert rc == 0 and out.exists(), err


# ------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("version", sorted(WRITERS))
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_mat_file_gives_one_line(tmp_path, capsys, version, how) -> None:
    src = WRITERS[version](tmp_path, 1)  # an unchanged copy in that format
    data = bytearray(src.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        for pos in range(600, len(data), 997):
            data[pos] ^= 0x5A
    src.write_bytes(bytes(data))
    _refused(_convert(capsys, src), src.name)


def test_a_crash_of_scipys_mat_reader_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    # bench/fuzz.py found damaged v7 files on which scipy's C reader dies with SIGSEGV,
    # taking the whole converter with it; the reader now runs it in a forked child.
    import os
    import signal

    from porting.converters.matfile import v5 as matfile

    monkeypatch.setattr(matfile, "_scipy_loadmat",
                        lambda path, names: os.kill(os.getpid(), signal.SIGSEGV))
    src = tmp_path / "model.mat"
    src.write_bytes(CAFFENET.read_bytes())
    _refused(_convert(capsys, src), "model.mat", "crashed", "signal 11")


@pytest.mark.parametrize("shared", [True, False])
def test_the_parent_unpickles_no_class_from_the_reader(tmp_path, capsys, monkeypatch,
                                                       shared) -> None:
    """The forked reader's answer is plain containers, unpickled with no class allowed: a
    child that sent anything else (here an object whose unpickling would run a command) is
    refused in one line, and nothing runs; with and without the shared-memory file."""
    import os
    import pickle

    from porting.converters.matfile import isolated as matfile_isolated

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({"net": Payload()})
    monkeypatch.setattr(matfile_isolated, "_send", lambda value, fd: (
        (b"\0" * 8 if fd is not None else b"") + evil))
    if not shared:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    src = tmp_path / "model.mat"
    src.write_bytes(CAFFENET.read_bytes())
    line = _refused(_convert(capsys, src), "model.mat", "refused")
    assert "system" in line and not marker.exists()


def test_arrays_come_back_whole_through_either_channel(monkeypatch) -> None:
    """Shared-memory file or pipe, the child's arrays come back equal, writable, in their
    MATLAB shapes and classes (C- and Fortran-ordered, empty, logical, chars, cells,
    structs)."""
    import os

    from porting.converters.matfile import v5 as matfile

    direct = matfile._read_v5(RESNET, None)
    via_memfd = load_mat(RESNET)
    monkeypatch.delattr(os, "memfd_create", raising=False)
    via_pipe = load_mat(RESNET)

    def same(a, b) -> None:
        assert type(a) is type(b)
        if isinstance(a, MatStruct):
            assert a.fields == b.fields and a.shape == b.shape
            for k in range(a.size):
                for f in a.fields:
                    same(a[k][f], b[k][f])
        elif isinstance(a, np.ndarray):
            assert a.shape == b.shape and a.dtype == b.dtype and b.flags.writeable
            if a.dtype == object:
                for x, y in zip(a.ravel(order="F"), b.ravel(order="F"), strict=True):
                    same(x, y)
            else:
                assert np.array_equal(a, b)
        elif isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                same(x, y)
        else:
            assert a == b

    for got in (via_memfd, via_pipe):
        assert list(got) == list(direct)
        for name in direct:
            same(direct[name], got[name])


def test_v73_references_that_loop_are_refused(tmp_path, capsys) -> None:
    # Found by bench/fuzz.py: a cell element redirected to an enclosing struct was read
    # again and again (the case ran past its time limit).
    import h5py

    src = tmp_path / "loop.mat"
    save_v73(src, load_mat(CAFFENET))
    with h5py.File(src, "r+") as f:
        cell = f["meta/classes/description"]
        refs = cell[()]
        refs.flat[0] = f["meta"].ref
        cell[...] = refs
    _refused(_convert(capsys, src), "loop.mat", "references loop")


# ------------------------------------------------------------------------- fuzz findings


def test_a_string_in_a_numeric_block_cell_names_the_layer(tmp_path, capsys) -> None:
    # LRN param = {1, 'x'}: a float() ValueError without the file or the layer before.
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((1, 1)), np.array("x")
    src = _simplenn_v7(tmp_path, 3, param=cell)
    _refused(_convert(capsys, src), src.name, "'norm1'", "param")


@pytest.mark.parametrize("key", ["stride", "dilate"])
def test_geometry_beyond_what_a_checkpoint_may_hold_is_refused_at_conversion(
        tmp_path, capsys, key) -> None:
    # A stride of 1e9 on a 1x1 map is valid MatConvNet arithmetic, but the written checkpoint
    # could not be loaded again (its schema bounds sizes): refuse it here, naming the field.
    src = _simplenn_v7(tmp_path, 0, **{key: np.array([[1e9, 1e9]])})
    _refused(_convert(capsys, src), src.name, "'conv1'", f"block.{key}", "16384")


@pytest.mark.parametrize("mean", [np.ones((1, 4)), np.ones((1, 1)), np.full((1, 3), np.nan)])
def test_an_average_image_that_is_not_rgb_names_the_field(tmp_path, capsys, mean) -> None:
    mat = scipy.io.loadmat(CAFFENET)
    norm = mat["meta"][0, 0]["normalization"]  # a 1x1 struct array
    norm["averageImage"][0, 0] = mean
    path = tmp_path / "mean.mat"
    scipy.io.savemat(path, {"layers": mat["layers"], "meta": mat["meta"]})
    _refused(_convert(capsys, path), path.name, "meta.normalization", "averageImage")


@pytest.mark.parametrize("target", ["/", "/#refs#"])
def test_v73_reference_to_the_root_is_refused_not_read_again(tmp_path, capsys, target) -> None:
    # bench/fuzz.py (mat73, seed 2): a weights reference redirected to the file's root re-read
    # the whole file at each visit, at the cost of one dereference: over 20 s per case.
    import h5py

    src = tmp_path / "root.mat"
    save_v73(src, load_mat(CAFFENET))
    with h5py.File(src, "r+") as f:
        cell = f["meta/classes/description"]
        refs = cell[()]
        refs.flat[0] = f[target].ref
        cell[...] = refs
    _refused(_convert(capsys, src), "root.mat", target)


def test_a_pooling_method_that_is_not_a_string_is_refused(tmp_path, capsys) -> None:
    # bench/fuzz.py (mat73): block.method reshaped to a char matrix ended in numpy's
    # "truth value of an array is ambiguous" without the file or the layer.
    src = _simplenn_v7(tmp_path, 2, method=np.array([["max", "avg"]]))
    _refused(_convert(capsys, src), src.name, "block.method")


def test_a_network_without_layers_is_one_line(tmp_path, capsys) -> None:
    # bench/fuzz.py (mat73): net.layers replaced by an empty array reached the graph runner
    # as an IndexError.
    mat = scipy.io.loadmat(CAFFENET)
    path = tmp_path / "empty.mat"
    scipy.io.savemat(path, {"layers": np.zeros((1, 0), dtype=object), "meta": mat["meta"]})
    _refused(_convert(capsys, path), "empty.mat")
