"""What both converters share: the parameter table (sharing and packing), storage compaction
before saving, building canonical models for ``--arch auto``, and ``compare``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from porting.converters.common import ConversionError, GraphBuilder, compact

from conftest import FIXTURES


def test_float32_contiguous_arrays_are_shared_not_copied() -> None:
    b = GraphBuilder("caffe", "net.caffemodel")
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b.param("conv1_w", w, "conv1")
    assert b.params["conv1_w"].data_ptr() == w.ctypes.data


def test_other_arrays_are_packed_into_one_buffer_with_their_values() -> None:
    rng = np.random.default_rng(0)
    b = GraphBuilder("matconvnet", "net.mat")
    filt = np.asfortranarray(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
    arrays = {
        "conv1_f": filt.transpose(3, 2, 0, 1),  # MatConvNet HxWxCxK -> KxCxHxW: not contiguous
        "conv1_b": rng.standard_normal(4),  # float64
        "bn_moments": np.asfortranarray(rng.standard_normal((4, 2)).astype(np.float32)),
    }
    for key, value in arrays.items():
        b.param(key, value, "layer")
    params = b.params
    assert list(params) == list(arrays)
    for key, value in arrays.items():
        assert params[key].dtype == torch.float32 and params[key].is_contiguous()
        np.testing.assert_array_equal(params[key].numpy(), value.astype(np.float32))
    starts = [params[k].data_ptr() for k in arrays]
    ends = [params[k].data_ptr() + params[k].numel() * 4 for k in arrays]
    assert starts[1:] == ends[:-1], "one buffer, one slice after the other"


def test_a_shared_name_checks_the_shape_also_while_pending() -> None:
    b = GraphBuilder("matconvnet", "net.mat")
    f = np.zeros((3, 3, 2, 4), dtype=np.float32, order="F").transpose(3, 2, 0, 1)
    b.param("shared_f", f, "conv1")
    b.param("shared_f", f, "conv1_2")
    with pytest.raises(ConversionError, match=r"net\.mat: layer 'conv9'.*'shared_f'"):
        b.param("shared_f", np.zeros((4, 2, 1, 1), dtype=np.float32), "conv9")
    assert b.shared_params() == {"shared_f": 2}
    assert len(b.params) == 1


def test_compact_copies_views_off_storages_with_unused_bytes() -> None:
    whole = torch.arange(10.0)
    alone = torch.ones(3)
    params = {"a": whole[2:5], "b": whole[2:5], "c": alone, "d": torch.arange(4.0)[:4]}
    out = compact(params)
    assert out["a"].untyped_storage().nbytes() == 12 and torch.equal(out["a"], whole[2:5])
    assert out["a"].data_ptr() == out["b"].data_ptr(), "keys on the same bytes stay shared"
    assert out["c"] is alone and out["d"] is params["d"], "whole storages are kept as they are"


def test_canonical_models_build_on_meta_without_importing_dynamo() -> None:
    # --arch auto builds the canonical model on the meta device; any op that pulls in
    # torch._dynamo there costs a 1.5 s import per conversion.
    code = """
import sys, torch
from porting.models import build_model
trunks = [{"name": n, "kwargs": {"semantics": s}} for n in ("caffenet", "vgg16", "resnet50")
          for s in ("caffe", "matconvnet")]
with torch.device("meta"):
    for t in trunks:
        build_model(t)
    build_model({"name": "siamese", "trunk": trunks[-1],
                 "kwargs": {"feat_dim": 2048, "num_ids": 751}})
assert "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


# ------------------------------------------------------------------------- compare


def _compare_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from porting.converters.compare import main as compare_main

    capsys.readouterr()
    rc = compare_main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_compare_rebuilds_a_seeded_input_from_the_fixture_itself(ckpts, capsys) -> None:
    # The trimmed Caffe dumps keep input/data as a seed, shape and SHA-256 only.
    ref = FIXTURES / "models" / "caffe_caffenet.npz"
    assert "input/data" not in np.load(ref).files
    rc, out, err = _compare_cli([ckpts["caffe_caffenet"], ref], capsys)
    assert rc == 0, err
    assert "13 of 13 outputs compared" in out and "worst" in out


def test_compare_refuses_a_seed_that_does_not_reproduce_its_digest(ckpts, tmp_path,
                                                                   capsys) -> None:
    z = np.load(FIXTURES / "models" / "caffe_caffenet.npz")
    arrays = {k: z[k] for k in z.files}
    arrays["__seed__/input/data"] = np.int64(int(arrays["__seed__/input/data"]) + 1)
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **arrays)
    rc, out, err = _compare_cli([ckpts["caffe_caffenet"], bad], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "tampered.npz" in err and "SHA-256" in err


def test_compare_reports_a_shape_mismatch_per_var_with_both_shapes(ckpts, tmp_path,
                                                                   capsys) -> None:
    import json

    z = np.load(FIXTURES / "models" / "caffe_caffenet.npz")
    arrays = {k: z[k] for k in z.files}
    arrays["blob/pool2"] = np.zeros((1, 8, 56, 56), np.float32)  # a VGG16 pool2
    ref = tmp_path / "mixed.npz"
    np.savez(ref, **arrays)
    report = tmp_path / "report.json"
    rc, out, err = _compare_cli([ckpts["caffe_caffenet"], ref, "--json", report], capsys)
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("| pool2 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["pool2", "1x32x13x13", "1x8x56x56", "0", "-", "-", "SHAPE"]
    assert "inf" not in out
    assert "pool2" in err and "1x32x13x13" in err and "1x8x56x56" in err
    rows = {r["name"]: r for r in json.loads(report.read_text())["rows"]}
    assert rows["pool2"]["status"] == "SHAPE" and rows["pool2"]["max_rel"] is None
    assert rows["pool2"]["ref_shape"] == [1, 8, 56, 56]
    assert rows["norm2"]["status"] == "ok", "the other vars are still compared"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_sha256_soon_works_in_a_forked_child(tmp_path) -> None:
    # A child forked after the hasher thread started inherited the executor without its
    # thread, and every conversion there waited forever for the source's digest.
    import hashlib
    import os

    from porting.converters import common

    src = tmp_path / "source.bin"
    src.write_bytes(b"weights")
    want = hashlib.sha256(b"weights").hexdigest()
    assert common.sha256_soon(src).result() == want
    pid = os.fork()
    if pid == 0:
        try:
            ok = common.sha256_soon(src).result(timeout=60) == want
        except BaseException:  # noqa: BLE001 - report through the exit status only
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_big_files_show_the_conversion_progress(tmp_path, monkeypatch, capsys) -> None:
    """One progress helper (porting.progress) for conversion too: a source file over
    BIG_FILE reports its layers converted (one summary line off a terminal); -q is silent."""
    from porting.converters import common
    from porting.converters.matconvnet import main

    src = FIXTURES / "matconvnet" / "caffenet_narrow" / "model.mat"
    monkeypatch.setattr(common, "BIG_FILE", 1)  # the fixture counts as big
    assert main([str(src), "-o", str(tmp_path / "a.pth"), "--arch", "none"]) == 0
    err = capsys.readouterr().err
    assert "converting model.mat:" in err and "layer" in err
    assert main([str(src), "-o", str(tmp_path / "b.pth"), "--arch", "none", "-q"]) == 0
    assert "converting" not in capsys.readouterr().err
