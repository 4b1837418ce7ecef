"""What both converters share: the parameter table (sharing and packing), storage compaction
before saving, and building canonical models for ``--arch auto``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from porting.converters.common import ConversionError, GraphBuilder, compact


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
