"""MatConvNet layer semantics (porting.layers) against MatConvNet's own kernels.

The reference values are tests/fixtures/matconvnet_layers: small nets built with MatConvNet's
dagnn classes / vl_simplenn and run with its CPU mex kernels under GNU Octave (see the README
there). Every layer is fed MatConvNet's own input var, so each one is checked on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from porting.layers.bilinear_sampler import (
    affine_grid,
    bilinear_sample,
    matlab_linspace,
    uniform_scaling_grid,
)
from porting.layers.conv_transpose import conv_transpose2d
from porting.layers.crop import adapted_crop, crop_borders, crop_like
from porting.layers.norm_offset import norm_offset
from porting.layers.pdist import AGGREGATE_ALL, AGGREGATE_IMAGE, pdist
from porting.layers.roi_pooling import flatten_rois, roi_pool
from porting.layers.spatial_norm import spatial_norm

from conftest import FIXTURES, rel_err

DIR = FIXTURES / "matconvnet_layers"
#: the issue's bound: float32 against MatConvNet's float32 kernels
RTOL = 1e-5


def nchw(a: np.ndarray) -> torch.Tensor:
    """MatConvNet's H x W x C x N array (trailing singletons dropped) as NCHW float32."""
    a = np.asarray(a, dtype=np.float32)
    return torch.from_numpy(a.reshape(a.shape + (1,) * (4 - a.ndim)).transpose(3, 2, 0, 1).copy())


def io(name: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in scipy.io.loadmat(DIR / f"{name}_io.mat").items()
            if not k.startswith("__")}


def dag_params(name: str) -> dict[str, np.ndarray]:
    params = scipy.io.loadmat(DIR / f"{name}.mat")["params"]
    return {str(params[0, i]["name"][0]): params[0, i]["value"] for i in range(params.shape[1])}


def check(ours: torch.Tensor, ref: np.ndarray) -> None:
    ref_t = nchw(ref)
    assert tuple(ours.shape) == tuple(ref_t.shape)
    assert rel_err(ours, ref_t.numpy()) <= RTOL


@pytest.fixture(scope="module")
def convt() -> tuple[dict, dict]:
    return io("convt_crop"), dag_params("convt_crop")


@pytest.mark.parametrize("layer", [
    # out, in, filters, bias, upsample, crop, groups
    ("y1", "x", "ct1f", "ct1b", (2, 3), (1, 2, 0, 1), 1),
    ("y2", "y1", "ct2f", None, (2, 2), (0, 1, 1, 0), 3),
    ("y3", "y2", "ct3f", "ct3b", (1, 1), (0, 0, 0, 0), 1),
    ("y6", "x", "ct4f", "ct4b", (3, 2), (1, 1, 2, 2), 1),
])
def test_conv_transpose(convt, layer) -> None:
    v, p = convt
    out, inp, f, b, up, crop, groups = layer
    # FH x FW x K x FD filters under the usual transposition are (FD, K, FH, FW)
    bias = None if b is None else torch.from_numpy(p[b].reshape(-1).astype(np.float32))
    y = conv_transpose2d(nchw(v[inp]), nchw(p[f]), bias, up, crop, groups=groups)
    check(y, v[out])


def test_conv_transpose_refuses_an_empty_output() -> None:
    with pytest.raises(ValueError, match="too large"):
        conv_transpose2d(torch.zeros(1, 2, 2, 2), torch.zeros(2, 1, 2, 2), crop=(2, 2, 0, 0))


def test_crop(convt) -> None:
    v, _ = convt
    check(crop_like(nchw(v["y3"]), nchw(v["x"]), (1, 2)), v["y4"])
    check(crop_like(nchw(v["y3"]), nchw(v["x"]), (30, 100)), v["y5"])  # clipped offsets
    assert adapted_crop((26, 56), (7, 9), (30, 100)) == (19, 0, 47, 0)
    with pytest.raises(ValueError, match="larger"):
        crop_like(nchw(v["x"]), nchw(v["y3"]), (0, 0))
    with pytest.raises(ValueError):
        crop_borders(torch.zeros(1, 1, 3, 3), (2, 1, 0, 0))


def test_norm_offset_and_spatial_norm() -> None:
    v = io("norms")
    check(norm_offset(nchw(v["x"]), 0.7, 0.4), v["n1"])
    check(spatial_norm(nchw(v["x"]), (3, 4, 0.5, 0.75)), v["n2"])
    check(spatial_norm(nchw(v["n1"]), (2, 2, 10, 2)), v["n3"])
    check(spatial_norm(nchw(v["n2"]), (5, 1, 0.01, 1.5)), v["n4"])


def grid_from_var(g: np.ndarray) -> torch.Tensor:
    """A ``2 x Ho x Wo x N`` grid var as (N, Ho, Wo, 2)."""
    return nchw(g).permute(0, 3, 1, 2)


def test_grid_generators() -> None:
    v = io("spatial_transformer")
    theta, theta2 = nchw(v["theta"]).reshape(2, 6), nchw(v["theta2"]).reshape(2, 6)
    for ours, ref in [(affine_grid(theta, 5, 7), v["grid_a"]),
                      (affine_grid(theta, 1, 4), v["grid_1"]),
                      (affine_grid(theta2, 6, 5), v["grid_2"]),
                      (uniform_scaling_grid(nchw(v["T"]).reshape(4, 3), 4, 6), v["grid_u"])]:
        assert tuple(ours.shape) == tuple(grid_from_var(ref).shape)
        assert rel_err(ours, grid_from_var(ref).numpy()) <= RTOL
    assert matlab_linspace(1, torch.float64).tolist() == [1.0]  # MATLAB: the end point


@pytest.mark.parametrize("grid,out", [("grid_a", "xa"), ("grid_u", "xu"), ("grid_1", "x1"),
                                      ("grid_2", "x2")])
def test_bilinear_sampler(grid, out) -> None:
    v = io("spatial_transformer")
    x, g, ref = nchw(v["x"]), grid_from_var(v[grid]), nchw(v[out])
    # the CPU kernel's own border: everywhere equal
    check(bilinear_sample(x, g, cpu_kernel=True), v[out])
    # the GPU kernel's border (the default): equal wherever the CPU kernel's quirk is silent,
    # and different where it is not (the fixtures' grids cross the top/left border band)
    y = bilinear_sample(x, g)
    py, px = 0.5 * (g[..., 0] + 1) * (x.shape[2] - 1), 0.5 * (g[..., 1] + 1) * (x.shape[3] - 1)
    band = ((py.floor() == -1) & (px.floor() >= -1) | (px.floor() == -1) & (py.floor() >= -1))
    band = band.unsqueeze(1).expand_as(ref)
    assert float((y - ref)[~band].abs().max()) <= RTOL * float(ref.abs().max())
    assert bool(band.any()) and float((y - ref)[band].abs().max()) > 1e-3


def test_bilinear_sampler_identity_is_exact_in_float64() -> None:
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    eye = torch.tensor([[1.0, 0, 0, 1, 0, 0]] * 2, dtype=torch.float64)
    assert torch.allclose(bilinear_sample(x, affine_grid(eye, 5, 8)), x, atol=1e-12)


def test_roi_pooling() -> None:
    v = io("roi_pooling")
    x = nchw(v["x"])
    rois = torch.from_numpy(v["rois"].T.astype(np.float32).copy())
    check(roi_pool(x, rois, (3, 2), 0.5, "max"), v["r1"])
    check(roi_pool(x, rois, (2, 3), 1, "avg"), v["r2"])
    check(flatten_rois(roi_pool(x, rois, (2, 2), (0.5, 0, 0, 0.25, 1, 2), "max")), v["r3"])


@pytest.mark.parametrize("name,inp,out,p,no_root,aggregate", [
    ("simplenn_layers", "relu1", "dist", 1.5, False, None),
    ("simplenn_pdist2", "conv1", "dist2", 2, True, AGGREGATE_IMAGE),  # beta23: per image
    ("simplenn_pdist3", "conv1", "dist3", 3, False, None),
    ("simplenn_pdist1", "conv1", "dist1", 1, False, AGGREGATE_IMAGE),
])
def test_pdist_simplenn(name, inp, out, p, no_root, aggregate) -> None:
    v = io(name)
    layer = scipy.io.loadmat(DIR / f"{name}.mat")["layers"][0, -1][0, 0]
    weights = None
    if "instanceWeights" in layer.dtype.names:
        weights = torch.from_numpy(layer["instanceWeights"].astype(np.float32))[None, None]
    check(pdist(nchw(v[inp]), nchw(v["label"]), p, no_root, aggregate, weights), v[out])


def test_pdist_dagnn_beta24() -> None:
    v = io("pdist_dag_beta24")
    f, x0, w = nchw(v["f"]), nchw(v["x0"]), nchw(v["w"])
    check(pdist(f, x0, 2), v["d"])
    check(pdist(f, x0, 1.5, aggregate=AGGREGATE_ALL), v["d_agg"])  # beta24: one scalar
    check(pdist(f, x0, 2, True, AGGREGATE_ALL, w), v["d_w"])


def test_simplenn_chain() -> None:
    """The SimpleNN chain's convt, noffset and spnorm, layer by layer."""
    v = io("simplenn_layers")
    layers = scipy.io.loadmat(DIR / "simplenn_layers.mat")["layers"][0]
    w = layers[1][0, 0]["weights"][0]
    up = conv_transpose2d(nchw(v["conv1"]), nchw(w[0]),
                          torch.from_numpy(w[1].reshape(-1).astype(np.float32)), (2, 2),
                          (1, 0, 0, 1), groups=2)
    check(up, v["up1"])
    check(norm_offset(nchw(v["up1"]), 0.5, 0.3), v["noff1"])
    check(spatial_norm(nchw(v["noff1"]), (3, 3, 0.1, 0.5)), v["spn1"])


def test_export_forms_run_in_onnx() -> None:
    """The exported forms (per-group ConvTranspose, the sampler as gathers, spnorm's static
    pooling) give PyTorch's float64 values in onnx's reference evaluator."""
    import io as bytes_io

    import onnx
    from onnx.reference import ReferenceEvaluator

    from porting.export.rewrite import exportable
    from porting.layers.spatial_norm import MatConvNetSpatialNorm

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 3, 3, 2, dtype=torch.float64))
            self.spn = MatConvNetSpatialNorm([3, 2, 0.01, 0.75])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = conv_transpose2d(x, self.w, None, (2, 1), (1, 0, 0, 1), groups=2)
            theta = torch.tensor([[1.3, 0.2, -0.3, 1.2, 0.1, -0.2]] * x.shape[0],
                                 dtype=x.dtype)
            return self.spn(bilinear_sample(y, affine_grid(theta, 5, 4)))

    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    net = exportable(Net().double(), x)
    with torch.no_grad():
        ref = net(x).numpy()
    buf = bytes_io.BytesIO()
    torch.onnx.export(net, (x,), buf, opset_version=17, dynamo=False)
    session = ReferenceEvaluator(onnx.load_from_string(buf.getvalue()))
    ours = session.run(None, {session.input_names[0]: x.numpy()})[0]
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-12 * np.abs(ref).max()
