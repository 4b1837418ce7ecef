"""Mutated source files: either a valid conversion or one clear line, exit 2, no output."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import porting
from porting.converters.caffe import main as convert_caffe
from porting.converters.matconvnet import main as convert_matconvnet

from conftest import FIXTURES

MAT = (FIXTURES / "matconvnet/caffenet_narrow/model.mat").read_bytes()
PROTO = (FIXTURES / "caffe/caffenet_narrow/deploy.prototxt").read_text()
WEIGHTS = (FIXTURES / "caffe/caffenet_narrow/weights.caffemodel").read_bytes()

mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 0.9999), st.integers(1, 255)),
                                        min_size=1, max_size=6)),
)


def _mutate(data: bytes, how) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[: int(len(data) * arg)]
    buf = bytearray(data)
    for pos, mask in arg:
        buf[int(pos * len(buf))] ^= mask
    return bytes(buf)


def _check(rc: int, err: str, name: str, out: Path, folder: Path, inputs: set[str]) -> None:
    assert rc in (0, 2), f"exit code {rc}"
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert name in lines[0], err
        assert not out.exists()
    else:
        porting.load(out)
    leftovers = {p.name for p in folder.iterdir()} - inputs - {out.name}
    assert not leftovers, f"temporary files left behind: {leftovers}"


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(how=mutation)
def test_mutated_mat_file(how, capsys) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        src = folder / "mutant.mat"
        src.write_bytes(_mutate(MAT, how))
        out = folder / "out.pth"
        capsys.readouterr()
        rc = convert_matconvnet([str(src), "-o", str(out), "-q"])
        _check(rc, capsys.readouterr().err, "mutant.mat", out, folder, {src.name})


@SETTINGS
@given(layer=st.integers(0, 20), field=st.sampled_from(
    ["weights", "pad", "stride", "pool", "method", "param", "type", "name", "size"]))
def test_mat_with_a_deleted_field(layer: int, field: str, capsys) -> None:
    mat = scipy.io.loadmat(MAT_PATH := FIXTURES / "matconvnet/caffenet_narrow/model.mat")
    old = mat["layers"][0, layer][0, 0]
    if field not in old.dtype.names:
        return
    keep = [n for n in old.dtype.names if n != field]
    new = np.zeros((1, 1), dtype=[(n, object) for n in keep])
    for n in keep:
        new[0, 0][n] = old[n]
    mat["layers"][0, layer] = new
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        src = folder / "edited.mat"
        scipy.io.savemat(src, {"layers": mat["layers"], "meta": mat["meta"]})
        out = folder / "out.pth"
        capsys.readouterr()
        rc = convert_matconvnet([str(src), "-o", str(out), "-q"])
        _check(rc, capsys.readouterr().err, "edited.mat", out, folder, {src.name})
    assert MAT_PATH.exists()


@SETTINGS
@given(how=mutation, target=st.sampled_from(["caffemodel", "prototxt"]))
def test_mutated_caffe_files(how, target: str, capsys) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        proto, weights = folder / "net.prototxt", folder / "net.caffemodel"
        if target == "prototxt":
            proto.write_bytes(_mutate(PROTO.encode(), how))
            weights.write_bytes(WEIGHTS)
        else:
            proto.write_text(PROTO)
            weights.write_bytes(_mutate(WEIGHTS, how))
        out = folder / "out.pth"
        capsys.readouterr()
        rc = convert_caffe([str(proto), str(weights), "-o", str(out), "-q"])
        err = capsys.readouterr().err
        name = "net.prototxt" if target == "prototxt" else "net."
        _check(rc, err, name, out, folder, {proto.name, weights.name})
