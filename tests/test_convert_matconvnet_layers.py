"""convert-matconvnet on every MatConvNet type the paper's nets do not use, against MatConvNet's
own outputs (tests/fixtures/matconvnet_layers: its dagnn classes, vl_simplenn and CPU mex
kernels under GNU Octave). Every var of every net is compared, fed only the nets' inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import porting
from porting.converters.matconvnet import main as convert_main

from conftest import FIXTURES, rel_err

DIR = FIXTURES / "matconvnet_layers"
RTOL = 1e-5  # the bound: float32 against MatConvNet's float32 kernels

NETS = {  # fixture -> extra convert-matconvnet options
    "convt_crop": [],
    "scale_inputs": [],
    "norms": [],
    "spatial_transformer": ["--bilinear-kernel", "cpu"],  # the fixtures ran the CPU kernel
    "roi_pooling": [],
    "simplenn_layers": [],
    "simplenn_pdist1": [],
    "simplenn_pdist2": [],
    "simplenn_pdist3": [],
    "pdist_dag_beta24": [],
}


def nchw(a: np.ndarray) -> torch.Tensor:
    """MatConvNet's H x W x C x N array (trailing singletons dropped) as NCHW float32."""
    a = np.asarray(a, dtype=np.float32)
    return torch.from_numpy(a.reshape(a.shape + (1,) * (4 - a.ndim)).transpose(3, 2, 0, 1).copy())


def convert(name: str, tmp_path: Path, *extra: str) -> porting.GraphModule:
    out = tmp_path / f"{name}.pth"
    assert convert_main([str(DIR / f"{name}.mat"), "-o", str(out), "-q", *extra]) == 0
    return porting.load(out, canonical=False)


def run_all(graph, name: str) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    ref = {k: v for k, v in scipy.io.loadmat(DIR / f"{name}_io.mat").items()
           if not k.startswith("__")}
    feeds = {v: nchw(ref[v]) for v in graph.inputs}
    wanted = [v for v in graph.var_names() if v not in graph.inputs]
    with torch.no_grad():
        return graph(**feeds, outputs=wanted), ref


@pytest.mark.parametrize("name", list(NETS))
def test_every_var_matches_matconvnet(name: str, tmp_path: Path) -> None:
    graph = convert(name, tmp_path, *NETS[name])
    ours, ref = run_all(graph, name)
    # every var MatConvNet computed is one of ours, and nothing is left unchecked
    produced = set(ref) - set(graph.inputs)
    assert produced == set(ours), (sorted(produced), sorted(ours))
    for v, y in ours.items():
        r = nchw(ref[v])
        assert tuple(y.shape) == tuple(r.shape), (v, tuple(y.shape), tuple(r.shape))
        assert rel_err(y, r.numpy()) <= RTOL, (v, rel_err(y, r.numpy()))


def test_bilinear_sampler_default_is_the_gpu_kernels_border(tmp_path: Path) -> None:
    """Without --bilinear-kernel cpu the samples within one pixel above or left of the image
    interpolate their in-image neighbours (MatConvNet's GPU kernel), so the CPU fixture's
    zeros there differ; everything else agrees."""
    graph = convert("spatial_transformer", tmp_path)
    ours, ref = run_all(graph, "spatial_transformer")
    assert rel_err(ours["grid_a"], nchw(ref["grid_a"]).numpy()) <= RTOL
    assert rel_err(ours["xa"], nchw(ref["xa"]).numpy()) > 1e-2


def _dag(name: str) -> dict:
    return {k: v for k, v in scipy.io.loadmat(DIR / f"{name}.mat").items()
            if not k.startswith("__")}


def _refused(path: Path, capsys, *words: str) -> None:
    assert convert_main([str(path), "-o", str(path.with_suffix(".pth")), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    for w in words:
        assert w in err, err
    assert not path.with_suffix(".pth").exists()


def test_elementwise_base_class_is_refused(tmp_path: Path, capsys) -> None:
    net = _dag("norms")
    net["layers"][0, 0]["type"] = np.array(["dagnn.ElementWise"])
    scipy.io.savemat(tmp_path / "ew.mat", net)
    _refused(tmp_path / "ew.mat", capsys, "'noff'", "dagnn.ElementWise", "computes nothing")


def _simplenn(path: Path, layers: list[dict]) -> Path:
    cells = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cells[0, i] = layer
    scipy.io.savemat(path, {"layers": cells, "meta": {"inputs": np.zeros((0, 0))}})
    return path


def test_simplenn_bnorm_without_mult_and_bias_is_refused(tmp_path: Path, capsys) -> None:
    """MatConvNet cannot run it either (vl_simplenn_tidy / vl_nnbnorm fail), and
    import-caffe.py's SimpleNN output writes its bnorm layers that way."""
    conv = {"type": "conv", "name": "conv1",
            "weights": np.array([[np.ones((3, 3, 3, 4), np.float32),
                                  np.zeros((1, 4), np.float32)]], dtype=object)}
    path = _simplenn(tmp_path / "bn.mat", [conv, {"type": "bnorm", "name": "bn1",
                                                   "weights": np.zeros((1, 0), dtype=object)}])
    _refused(path, capsys, "'bn1'", "mult", "MatConvNet")


def test_pdist_target_stored_in_the_file(tmp_path: Path) -> None:
    """A SimpleNN pdist whose ``class`` is in the file compares with that constant (no label
    input)."""
    net = scipy.io.loadmat(DIR / "simplenn_pdist3.mat")
    ref = {k: v for k, v in scipy.io.loadmat(DIR / "simplenn_pdist3_io.mat").items()
           if not k.startswith("__")}
    layers = net["layers"]
    layer = layers[0, 1][0, 0]
    fields = {k: layer[k] for k in layer.dtype.names}
    fields["class"] = ref["label"]
    layers[0, 1] = fields
    scipy.io.savemat(tmp_path / "fixed.mat", {"layers": layers, "meta": net["meta"]})
    out = tmp_path / "fixed.pth"
    assert convert_main([str(tmp_path / "fixed.mat"), "-o", str(out), "-q"]) == 0
    graph = porting.load(out, canonical=False)
    assert graph.inputs == ["input"]
    with torch.no_grad():
        y = graph(input=nchw(ref["input"]), outputs=["dist3"])["dist3"]
    assert rel_err(y, nchw(ref["dist3"]).numpy()) <= RTOL


def test_dagnn_batchnorm_with_empty_mult_is_refused(tmp_path: Path, capsys) -> None:
    """A DagNN BatchNorm whose mult/bias are empty (MatConvNet's vl_nnbnorm refuses them)."""
    net = _dag("convt_crop")
    layers, params = net["layers"], net["params"]
    layer = layers[0, 0]  # ct1, reading the 3-channel input x
    layer["type"] = np.array(["dagnn.BatchNorm"])
    names = np.empty((1, 3), dtype=object)
    rows = np.empty((1, 3), dtype=params.dtype)
    values = [np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32),
              np.ones((3, 2), np.float32)]
    for k, n in enumerate(("bn_m", "bn_b", "bn_x")):
        names[0, k] = np.array([n])
        for f in params.dtype.names:
            rows[0, k][f] = params[0, 0][f]
        rows[0, k]["name"] = np.array([n])
        rows[0, k]["value"] = values[k]
    layer["params"] = names
    block = np.zeros((1, 1), dtype=[("epsilon", object)])
    block[0, 0]["epsilon"] = np.array([[1e-5]])
    layer["block"] = block
    net["params"] = np.concatenate([params, rows], axis=1)
    scipy.io.savemat(tmp_path / "bn.mat", net)
    _refused(tmp_path / "bn.mat", capsys, "'ct1'", "mult/bias", "empty", "MULTIPLIERS")
