"""``export``: ONNX (checked with onnx.checker and run by onnx.reference.ReferenceEvaluator)
and TorchScript files that reproduce the PyTorch model, per layer kind and on the converted
fixture networks; dynamic batch; bad input.

The reference evaluator is slow (numpy), so the fixture nets are checked once each on a
batch of 2 (which also runs the batch-1 trace with another batch size).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

import porting
from porting.checkpoint import make_checkpoint, save_checkpoint
from porting.export import exportable, main
from porting.layers import (
    CaffeBatchNorm,
    CaffeLRN,
    CaffePool2d,
    CaffeScale,
    MatConvNetBatchNorm,
    MatConvNetLRN,
    MatConvNetPool2d,
)
from porting.preprocess import Preprocess

from conftest import FIXTURES, assert_fp32_close, rel_err, seeded_input

IO = FIXTURES / "models"
TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Every layer without a direct ONNX op, alone: float64 (semantics) and float32
# --------------------------------------------------------------------------------------------


def _caffe_bn(c: int) -> nn.Module:
    bn = CaffeBatchNorm(c, eps=1e-5)
    g = torch.Generator().manual_seed(1)
    bn.mean.copy_(torch.randn(c, generator=g) * 3)
    bn.variance.copy_(torch.rand(c, generator=g) * 5 + 0.1)
    bn.scale_factor.fill_(0.75)  # running sums: statistics are blob / factor
    scale = CaffeScale(c)
    with torch.no_grad():
        scale.weight.copy_(torch.rand(c, generator=g) + 0.5)
        scale.bias.copy_(torch.randn(c, generator=g))
    return nn.Sequential(bn, scale)


def _mcn_bn(c: int) -> nn.Module:
    bn = MatConvNetBatchNorm(c)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        bn.mult.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.moments.copy_(torch.stack([torch.randn(c, generator=g),
                                      torch.rand(c, generator=g) + 0.2], 1))
    return bn


LAYERS = {  # name -> (module factory, input C, H, W)
    # CEIL with a clipped last window (13 -> 7 windows of 3, stride 2), with and without pad
    "caffe-max-ceil": (lambda: CaffePool2d("max", 3, 2), (6, 13, 12)),
    "caffe-max-ceil-pad": (lambda: CaffePool2d("max", 3, 2, 1), (6, 13, 12)),
    "caffe-max-ceil-drop": (lambda: CaffePool2d("max", 2, 3, 1), (6, 7, 8)),
    "caffe-ave-ceil-pad": (lambda: CaffePool2d("ave", 3, 2, 1), (6, 13, 12)),
    "caffe-ave-7x7": (lambda: CaffePool2d("ave", 7, 1), (6, 8, 7)),
    "caffe-ave-global": (lambda: CaffePool2d("ave", global_pooling=True), (6, 5, 3)),
    "caffe-max-floor-pad": (lambda: CaffePool2d("max", 3, 2, 1, ceil_mode=False), (6, 13, 12)),
    "caffe-lrn-across": (lambda: CaffeLRN(5, 1e-4 * 50, 0.75, 2.0), (9, 5, 4)),
    "caffe-lrn-within": (lambda: CaffeLRN(3, 0.5, 0.75, norm_region="WITHIN_CHANNEL"),
                         (4, 6, 5)),
    "mcn-max-asym": (lambda: MatConvNetPool2d("max", 3, 2, (0, 1, 0, 1)), (6, 12, 13)),
    "mcn-avg-asym": (lambda: MatConvNetPool2d("avg", 3, 2, (1, 2, 0, 1)), (6, 12, 13)),
    "mcn-lrn-caffe-like": (lambda: MatConvNetLRN((5, 1.0, 2e-5 * 1e3, 0.75)), (9, 5, 4)),
    "mcn-lrn-even": (lambda: MatConvNetLRN((4, 0.5, 0.1, 0.6)), (9, 5, 4)),
    "mcn-lrn-wide": (lambda: MatConvNetLRN((33, 0.5, 0.01, 0.75)), (40, 3, 2)),  # cumsum path
    "mcn-lrn-l2": (lambda: MatConvNetLRN((4096, 0.0, 1.0, 0.5)), (40, 3, 2)),  # all channels
    "caffe-bn-scale": (lambda: _caffe_bn(6), (6, 5, 4)),
    "mcn-bn": (lambda: _mcn_bn(6), (6, 5, 4)),
}


def _onnx_run(net: nn.Module, x: torch.Tensor, check: torch.Tensor) -> np.ndarray:
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    assert "LRN" not in {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    return ReferenceEvaluator(model).run(None, {"x": check.numpy()})[0]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_exports_exactly(name: str) -> None:
    factory, shape = LAYERS[name]
    g = torch.Generator().manual_seed(0)
    check = torch.randn(2, *shape, generator=g, dtype=torch.float64) * 3
    with torch.no_grad():
        ref64 = factory().double().eval()(check).numpy()
    for dtype in (torch.float64, torch.float32):
        ref_module = factory().to(dtype).eval()
        with torch.no_grad():
            ref = ref_module(check.to(dtype))
        net = exportable(nn.Sequential(factory()).to(dtype), check[:1].to(dtype))
        # every layer left is its own export form (an across-channels LRN exports as it is)
        left = [type(m).__name__ for m in net.modules()
                if hasattr(m, "export_form") and m.export_form(shape) is not m]
        assert not left, left
        with torch.no_grad():
            eager = net(check.to(dtype))
        got = _onnx_run(net, check[:1].to(dtype), check.to(dtype))  # batch 2 through batch 1
        assert got.dtype == np.dtype("float64" if dtype == torch.float64 else "float32")
        if dtype == torch.float64:
            assert rel_err(eager, ref.numpy()) <= 1e-12
            assert rel_err(got, ref.numpy()) <= 1e-12, (name, rel_err(got, ref.numpy()))
        else:
            assert_fp32_close(eager, ref, ref64, TOL)
            assert_fp32_close(got, ref, ref64, TOL)


def test_exact_pool_matches_caffe_clip_rule_geometry() -> None:
    # 12, kernel 3, stride 2, pad 1: CEIL gives 7 windows, the last one overhangs the right
    # padding by one; Caffe's AVE divisor clips it to H + pad (2 rows/cols, not 3).
    pool = CaffePool2d("ave", 3, 2, 1).export_form((1, 12, 12)).geometry
    assert pool.out_size == (7, 7) and pool.pads == (1, 2, 1, 2)
    assert pool.divisor[0].tolist() == [9, 9, 9, 9, 9, 9, 6] and pool.divisor[6, 6] == 4
    # 7, kernel 2, stride 3, pad 1: ceil((7 + 2 - 2) / 3) + 1 = 4, but the 4th window would
    # start in the right padding, so Caffe drops it.
    pool = CaffePool2d("max", 2, 3, 1).export_form((1, 7, 7)).geometry
    assert pool.out_size == (3, 3)
    # The LRN windows, read off the exported layers' response to one non-zero channel.
    probe = torch.zeros(1, 8, 1, 1)
    probe[0, 3] = 1.0
    lrn = MatConvNetLRN((4, 1, 1, 0.5)).export_form((8, 1, 1))
    touched = torch.nonzero(lrn(probe + 1.0) != lrn(probe * 0 + 1.0))[:, 1].tolist()
    assert touched == [1, 2, 3, 4]  # MatConvNet's even window: c in [q-2, q+1], one more above
    caffe = CaffeLRN(5, 2.0, 0.75).export_form((8, 1, 1))
    # a lone channel x: x * (1 + alpha/size * x^2) ** -beta, alpha/size = 0.4
    assert caffe(probe)[0, 3].item() == pytest.approx((1 + 0.4) ** -0.75)


# --------------------------------------------------------------------------------------------
# The converted fixture networks, through the CLI
# --------------------------------------------------------------------------------------------


def _caffe_input(npz: str, tmp_path: Path) -> Path:
    x = seeded_input(np.load(IO / npz), "input/data")
    path = tmp_path / "input.npy"
    np.save(path, np.concatenate([x, -0.5 * x[..., ::-1]]))  # batch 2
    return path


def _export(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _report(path: Path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())


def _within_rule(chk: dict) -> bool:
    """The machine-independent rule (porting.export.parity), recomputed from the report's
    three numbers per output: the file vs float64 within max(TOL, 2 x PyTorch's own)."""
    for row in chk["per_output"].values():
        if row["file_fp32_vs_fp64"] > max(TOL, 2 * row["pytorch_fp32_vs_fp64"]):
            return False
        if "fp64" in row and row["fp64"] > 1e-10:
            return False
    return True


def _check_reports(tmp_path: Path, kinds=("onnx", "pt")) -> dict[str, dict]:
    reports = {}
    for kind in kinds:
        rep = _report(tmp_path / f"out.{kind}")
        chk = rep["check"]
        assert chk["passed"] and chk["batch"] == 2
        assert rep["inputs"][next(iter(rep["inputs"]))][0] == "batch"
        reports[kind] = rep
    return reports


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_caffe_caffenet_onnx_and_torchscript(ckpts, tmp_path: Path, capsys) -> None:
    """CEIL max pooling and Caffe LRN; fc7 descriptor (caffe-dxy recipe)."""
    inp = _caffe_input("caffe_caffenet.npz", tmp_path)
    rc, out, err = _export([ckpts["caffe_caffenet"], "--onnx", tmp_path / "out.onnx",
                            "--torchscript", tmp_path / "out.pt", "--input", inp], capsys)
    assert rc == 0, err
    assert out.count("export: wrote") == 2 and "file vs float64" in out
    assert "PyTorch float32 vs float64" in out and "float64 graph" in out
    reps = _check_reports(tmp_path)
    onnx_rep = reps["onnx"]["check"]
    assert _within_rule(onnx_rep) and onnx_rep["max_rel_err_fp64"] <= 1e-10
    assert reps["onnx"]["feature_var"] == "fc7" and reps["onnx"]["recipe"] == "caffe-dxy"
    assert {"MaxPool", "Pad", "Pow"} <= set(onnx_rep["ops"])
    assert _within_rule(reps["pt"]["check"])
    # the file itself: dynamic batch, named input and output, metadata
    model = onnx.load(tmp_path / "out.onnx")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "data" and dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [3, 227, 227]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["reid_porting.preprocess"])["colour"] == "BGR"
    x = torch.from_numpy(np.load(inp))
    ts = torch.jit.load(tmp_path / "out.pt")
    graph = porting.load(ckpts["caffe_caffenet"])
    with torch.no_grad():
        ref = graph(data=x, outputs=["fc7"])["fc7"]
        ref64 = graph.double()(data=x.double(), outputs=["fc7"])["fc7"]
    ref, ref64 = ref / ref.norm(dim=1, keepdim=True), ref64 / ref64.norm(dim=1, keepdim=True)
    assert_fp32_close(ts(x[1:]), ref[1:], ref64[1:], TOL)
    print(f"caffe caffenet: onnx {onnx_rep['max_rel_err']:.2e}, torchscript "
          f"{reps['pt']['check']['max_rel_err']:.2e}")


def test_matconvnet_caffenet_onnx_and_torchscript(ckpts, tmp_path: Path, capsys) -> None:
    """MatConvNet asymmetric pool padding and MatConvNet LRN; pool5 + L2 descriptor."""
    x = np.load(IO / "mcn_caffenet.npz")["input"]
    np.save(tmp_path / "input.npy", np.concatenate([x, x[..., ::-1]]))
    rc, out, err = _export([ckpts["mcn_caffenet"], "--onnx", tmp_path / "out.onnx",
                            "--torchscript", tmp_path / "out.pt",
                            "--input", tmp_path / "input.npy"], capsys)
    assert rc == 0, err
    reps = _check_reports(tmp_path)
    assert _within_rule(reps["onnx"]["check"])
    assert reps["onnx"]["check"]["max_rel_err_fp64"] <= 1e-10
    assert _within_rule(reps["pt"]["check"])
    print(f"mcn caffenet: onnx {reps['onnx']['check']['max_rel_err']:.2e}, torchscript "
          f"{reps['pt']['check']['max_rel_err']:.2e}")


def test_caffe_resnet50_onnx_and_torchscript(ckpts, tmp_path: Path, capsys) -> None:
    """BatchNorm + Scale (Caffe blobs), CEIL pool1, AVE pool5."""
    inp = _caffe_input("caffe_resnet50.npz", tmp_path)
    rc, out, err = _export([ckpts["caffe_resnet50"], "--onnx", tmp_path / "out.onnx",
                            "--torchscript", tmp_path / "out.pt", "--input", inp,
                            "--fp32-only"], capsys)
    assert rc == 0, err
    reps = _check_reports(tmp_path)
    assert _within_rule(reps["onnx"]["check"])
    assert _within_rule(reps["pt"]["check"])
    assert "BatchNormalization" not in reps["onnx"]["check"]["ops"]
    print(f"caffe resnet50: onnx {reps['onnx']['check']['max_rel_err']:.2e}, torchscript "
          f"{reps['pt']['check']['max_rel_err']:.2e}")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_two_stream_embed_market_recipe(ckpts, tmp_path: Path, capsys) -> None:
    """pool5 -> LRN-as-L2 per position -> sum -> + flipped -> L2, at 256x256."""
    x = np.load(IO / "mcn_2stream_256.npz")["data"]  # 2 x 3 x 256 x 256
    np.save(tmp_path / "input.npy", x)
    rc, out, err = _export([ckpts["two_stream"], "--onnx", tmp_path / "out.onnx",
                            "--torchscript", tmp_path / "out.pt", "--fp32-only",
                            "--input", tmp_path / "input.npy"], capsys)
    assert rc == 0, err
    reps = _check_reports(tmp_path)
    assert reps["onnx"]["recipe"] == "market-matconvnet" and reps["onnx"]["flip"] == "in-graph"
    assert _within_rule(reps["onnx"]["check"])
    assert _within_rule(reps["pt"]["check"])
    # the descriptor is the authors': pool5n (their LRN head) summed, + flipped, L2
    graph = porting.load(ckpts["two_stream"])
    xt = torch.from_numpy(x[1:])

    def descriptor(net, xt):
        with torch.no_grad():
            f = net(data=xt, outputs=["pool5n"])["pool5n"].sum(dim=(2, 3))
            f = f + net(data=xt.flip(3), outputs=["pool5n"])["pool5n"].sum(dim=(2, 3))
        return f / f.norm(dim=1, keepdim=True)
    f = descriptor(graph, xt)
    got = torch.jit.load(tmp_path / "out.pt")(xt)
    assert got.shape == (1, 256)
    assert_fp32_close(got, f, descriptor(graph.double(), xt.double()), TOL)
    print(f"2-stream embed: onnx {reps['onnx']['check']['max_rel_err']:.2e}, torchscript "
          f"{reps['pt']['check']['max_rel_err']:.2e}")


def test_two_stream_siamese_at_224(ckpts, tmp_path: Path, capsys) -> None:
    z = np.load(IO / "mcn_2stream_256.npz")
    np.save(tmp_path / "a.npy", z["data"][:, :, :224, :224])
    np.save(tmp_path / "b.npy", z["data_2"][:, :, 16:240, 16:240])
    rc, out, err = _export([ckpts["two_stream"], "--what", "siamese",
                            "--onnx", tmp_path / "out.onnx", "--torchscript",
                            tmp_path / "out.pt", "--fp32-only",
                            "--input", tmp_path / "a.npy", "--input", tmp_path / "b.npy"],
                           capsys)
    assert rc == 0, err
    reps = _check_reports(tmp_path)
    rep = reps["onnx"]
    assert rep["inputs"] == {"data": ["batch", 3, 224, 224], "data_2": ["batch", 3, 224, 224]}
    assert rep["outputs"] == ["prediction", "prediction_2", "Dist_prediction"]
    per = rep["check"]["per_output"]
    # The verification logits come from fc9 over (f1 - f2)^2, a cancellation: in float32
    # PyTorch itself is ~1e-5 away from its float64 result, so every output is held to be as
    # accurate as PyTorch rather than to reproduce its rounding (see ParityCheck).
    assert _within_rule(rep["check"])
    for name in rep["check"]["conditioning_limited"]:
        assert per[name]["file_fp32_vs_fp64"] > TOL
    assert _within_rule(reps["pt"]["check"])
    print("2-stream siamese: onnx " + ", ".join(f"{k} {v['fp32']:.2e}" for k, v in per.items())
          + f"; torchscript {reps['pt']['check']['max_rel_err']:.2e}")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_flip_fed_as_second_input_matches_feature_extractor(ckpts, tmp_path: Path,
                                                            capsys) -> None:
    """A flip recipe on a checkpoint with a mean IMAGE: flipping the preprocessed tensor is
    not flipping the image, so the embedding takes the flipped image as a second input;
    with an image as --input the check batch is the checkpoint's own preprocessing."""
    image = FIXTURES / "preprocess" / "0066_c3s1_008701_03.jpg"
    rc, out, err = _export([ckpts["mcn_caffenet"], "--recipe", "market-matconvnet",
                            "--input", image, "--torchscript", tmp_path / "out.pt",
                            "--onnx", tmp_path / "out.onnx", "--fp32-only"], capsys)
    assert rc == 0, err
    reps = _check_reports(tmp_path)
    assert reps["onnx"]["flip"] == "input"
    assert list(reps["onnx"]["inputs"]) == ["input", "input_flipped"]
    assert _within_rule(reps["onnx"]["check"])
    pre = Preprocess.from_dict(porting.load(ckpts["mcn_caffenet"]).preprocess_spec)
    x, xf = pre(image)[None], pre(image, flip=True)[None]
    got = torch.jit.load(tmp_path / "out.pt")(x, xf)
    fe = porting.FeatureExtractor(ckpts["mcn_caffenet"], device="cpu",
                                  recipe="market-matconvnet")
    from porting.features import feature_map
    from porting.recipes import get_recipe, l2_normalize, pool_positions

    rec, net64 = get_recipe("market-matconvnet"), fe.model.double()
    with torch.no_grad():
        ref64 = l2_normalize(pool_positions(feature_map(net64, x.double()), rec)
                             + pool_positions(feature_map(net64, xf.double()), rec))
    fe.model.float()
    assert_fp32_close(got, fe(image), ref64, TOL)


def test_canonical_siamese_reid_torchscript(ckpts, tmp_path: Path, capsys) -> None:
    """--canonical: the porting.models.SiameseReID (MatConvNet semantics) instead of the graph:
    its modules are swapped in place for the export-exact ones; the reference is .embed."""
    rc, out, err = _export([ckpts["two_stream"], "--canonical", "--torchscript",
                            tmp_path / "out.pt", "--fp32-only"], capsys)
    assert rc == 0, err
    rep = _report(tmp_path / "out.pt")
    assert rep["model"] == "a canonical SiameseReID" and rep["check"]["passed"]
    assert _within_rule(rep["check"]) and rep["inputs"] == {"data": ["batch", 3, 256, 256]}


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _one_line_error(capsys, args, needle: str) -> None:
    rc, out, err = _export(args, capsys)
    assert rc == 2
    err = err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_bad_checkpoints_fail_cleanly(tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.onnx"
    _one_line_error(capsys, [tmp_path / "missing.pth", "--onnx", out], "no such file")
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, foreign)
    _one_line_error(capsys, [foreign, "--onnx", out], "bare state_dict from another tool")
    newer = make_checkpoint({"w": torch.zeros(1)}, graph={"layers": []})
    newer["version"] = 99
    save_checkpoint(tmp_path / "newer.pth", newer)
    _one_line_error(capsys, [tmp_path / "newer.pth", "--onnx", out], "version 99")
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    _one_line_error(capsys, [text, "--torchscript", out], "not a readable PyTorch checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.pth", "newer.pth",
                                                           "text.pth"]


def test_bad_requests_fail_cleanly(ckpts, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.onnx"
    ck = ckpts["mcn_caffenet"]
    _one_line_error(capsys, [ck, "--what", "siamese", "--onnx", out],
                    "needs the two-stream net")
    _one_line_error(capsys, [ck, "--what", "siamese", "--onnx", out],
                    "matconvnet graph from model.mat with input(s) ['input']")
    _one_line_error(capsys, [ck], "nothing to do")
    _one_line_error(capsys, [ck, "--onnx", out, "--opset", 7], "--opset must be in")
    _one_line_error(capsys, [ck, "--onnx", out, "--recipe", "nope"], "unknown recipe")
    _one_line_error(capsys, [ck, "--onnx", out, "--feature-var", "nope"], "'nope'")
    _one_line_error(capsys, [ck, "--onnx", out, "--size", 32, 32], "cannot run the model")
    _one_line_error(capsys, [ck, "--onnx", out, "--input", tmp_path / "none.npy"],
                    "no such file")
    assert list(tmp_path.iterdir()) == []


def test_failed_parity_writes_nothing(ckpts, tmp_path: Path, capsys, monkeypatch) -> None:
    """A wrong export (here MatConvNet's LRN with ONNX's convention, alpha divided by the
    window size) fails the check: exit 1, nothing written."""
    def onnx_convention(self, in_shape=None):
        n, kappa, alpha, beta = self.param
        return MatConvNetLRN((n, kappa, alpha / n, beta))

    monkeypatch.setattr(MatConvNetLRN, "export_form", onnx_convention)
    rc, out, err = _export([ckpts["mcn_caffenet"], "--torchscript", tmp_path / "out.pt"],
                           capsys)
    assert rc == 1 and "parity check FAILED" in err and "float64 graph" in err, err
    assert list(tmp_path.iterdir()) == []


def test_tight_tolerance_is_the_rule_or_nothing_written(ckpts, tmp_path: Path, capsys) -> None:
    """--tolerance 1e-12 --fp32-only: a file is written only if it is as accurate as PyTorch's
    own float32 result (2x its error against float64); otherwise exit 1 and no file."""
    inp = _caffe_input("caffe_caffenet.npz", tmp_path / "..")
    out = tmp_path / "out.onnx"
    rc, _, err = _export([ckpts["caffe_caffenet"], "--onnx", out, "--input", inp,
                          "--tolerance", "1e-12", "--fp32-only"], capsys)
    if rc == 0:
        chk = _report(out)["check"]
        assert chk["passed"] and chk["tolerance"] == 1e-12
        for row in chk["per_output"].values():
            assert row["file_fp32_vs_fp64"] <= 2 * row["pytorch_fp32_vs_fp64"]
    else:
        assert rc == 1 and "FAILED" in err and "not written" in err
        assert list(tmp_path.iterdir()) == []
