"""The models built with MatConvNet semantics against MatConvNet's own outputs.

Weights come from the fixtures' ``model.mat`` through a test-side scipy reader; outputs were
computed by MatConvNet beta23's kernels. Worst relative error per tensor must stay <= 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from porting.layers import class_error, softmax_log_loss
from porting.models import VGG16, CaffeNet, ResNet50, SiameseReID

from conftest import FIXTURES, rel_err
from mcn_weights import (
    dagnn_params,
    load_dagnn_resnet,
    load_simplenn,
    resnet_var_names,
    simplenn_weights,
)

TOL = 1e-5
MCN = FIXTURES / "matconvnet"
IO = FIXTURES / "models"


def _capture(model: torch.nn.Module, names: dict[str, str]) -> dict[str, torch.Tensor]:
    """Record each named module's output (and a block's pre-ReLU sum) under its var name."""
    outs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for path, var in names.items():
        if path not in modules:
            continue
        modules[path].register_forward_hook(
            lambda m, i, o, var=var: outs.__setitem__(var, o.detach())
        )
        if path.endswith(".relu"):  # the Sum feeding a block's final ReLU
            block_var = var[:-1]
            modules[path].register_forward_pre_hook(
                lambda m, i, v=block_var: outs.__setitem__(v, i[0].detach())
            )
    return outs


def _check(outs: dict, io: np.lib.npyio.NpzFile, skip: set[str] = frozenset()) -> float:
    worst, compared = 0.0, 0
    for key in io.files:
        if key.startswith("__") or key in skip or key not in outs:
            continue
        err = rel_err(outs[key], io[key])
        assert err <= TOL, f"{key}: relative error {err:.2e}"
        worst, compared = max(worst, err), compared + 1
    assert compared >= 3, f"only {compared} tensors compared"
    return worst


def _caffenet() -> CaffeNet:
    w = simplenn_weights(MCN / "caffenet_narrow" / "model.mat")
    widths = tuple(w[f"conv{i}"][0].shape[3] for i in range(1, 6))
    model = CaffeNet("matconvnet", num_classes=w["fc8"][0].shape[3], widths=widths,
                     fc_width=w["fc7"][0].shape[3])
    load_simplenn(model, w)
    return model.eval()


def _vgg16() -> VGG16:
    w = simplenn_weights(MCN / "vgg16_narrow" / "model.mat")
    widths = tuple(w[f"conv{i}_1"][0].shape[3] for i in range(1, 6))
    model = VGG16("matconvnet", num_classes=w["fc8"][0].shape[3], widths=widths,
                  fc_width=w["fc7"][0].shape[3])
    load_simplenn(model, w)
    return model.eval()


def _run_simplenn(model: torch.nn.Module, io) -> dict[str, torch.Tensor]:
    names = {n: n for n, _ in model.named_modules() if n}
    outs = _capture(model, names)
    with torch.no_grad():
        logits = model(torch.from_numpy(io["input"]))
    outs["prob"] = torch.softmax(logits, dim=1)
    return outs


@pytest.mark.parametrize("npz", ["mcn_caffenet.npz", "mcn_caffenet_224.npz"])
def test_caffenet_matches_matconvnet(npz: str) -> None:
    io = np.load(IO / npz)
    outs = _run_simplenn(_caffenet(), io)
    _check(outs, io)


def test_caffenet_224_exercises_pool_padding() -> None:
    """At 224 the [0 1 0 1] pad keeps pool1 at 27x27 where plain floor pooling gives 26."""
    io = np.load(IO / "mcn_caffenet_224.npz")
    model = _caffenet()
    outs = _run_simplenn(model, io)
    assert outs["pool5"].shape[-1] == io["pool5"].shape[-1] == 6
    assert model.pool1.pad == (0, 1, 0, 1)


def test_vgg16_matches_matconvnet() -> None:
    io = np.load(IO / "mcn_vgg16.npz")
    outs = _run_simplenn(_vgg16(), io)
    _check(outs, io)


def _resnet(num_classes: int | None) -> tuple[ResNet50, dict[str, np.ndarray]]:
    params = dagnn_params(MCN / "resnet50_narrow" / "model.mat")
    width = params["conv1_filter"].shape[3]
    model = ResNet50("matconvnet", num_classes=num_classes, width=width)
    load_dagnn_resnet(model, params)
    return model.eval(), params


@pytest.mark.parametrize("npz", ["mcn_resnet50.npz", "mcn_resnet50_227.npz"])
def test_resnet50_matches_matconvnet(npz: str) -> None:
    io = np.load(IO / npz)
    model, params = _resnet(params_classes := 1000)
    assert params["fc1000_filter"].shape[-1] == params_classes
    names = resnet_var_names(model) | {"fc1000": "fc1000"}
    outs = _capture(model, names)
    with torch.no_grad():
        logits = model(torch.from_numpy(io["data"]))
    outs["prob"] = torch.softmax(logits, dim=1)
    _check(outs, io)


def _two_stream() -> SiameseReID:
    params = dagnn_params(MCN / "resnet52_2stream_narrow" / "model.mat")
    width = params["conv1_filter"].shape[3]
    trunk = ResNet50("matconvnet", num_classes=None, width=width)
    load_dagnn_resnet(trunk, params)
    model = SiameseReID(trunk, feat_dim=trunk.out_channels,
                        num_ids=params["fc751f"].shape[-1], dropout=0.9)
    with torch.no_grad():
        for conv, f, b in ((model.fc751, "fc751f", "fc751b"), (model.fc9, "fc9f", "fc9b")):
            conv.weight.copy_(torch.from_numpy(params[f].transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(params[b].ravel()))
    return model.eval()


def test_two_stream_shares_one_parameter_set() -> None:
    model = _two_stream()
    params = dagnn_params(MCN / "resnet52_2stream_narrow" / "model.mat")
    n_ours = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if n.endswith("moments"))
    assert n_ours == sum(v.size for v in params.values())


def test_two_stream_256_outputs_losses_and_test_features() -> None:
    io = np.load(IO / "mcn_2stream_256.npz")
    model = _two_stream()
    x1, x2 = torch.from_numpy(io["data"]), torch.from_numpy(io["data_2"])
    with torch.no_grad():
        out = model(x1, x2)
        f1, f2 = model.features(x1), model.features(x2)
    assert f1.shape[-2:] == (2, 2)  # pool5 of a 256x256 input
    checks = {
        "pool5": f1, "pool5_2": f2, "prediction_2": out.prediction_2,
        "ODist": (f1 - f2) ** 2, "Dist_prediction": out.dist_prediction,
    }
    for key, ours in checks.items():
        assert rel_err(ours, io[key]) <= TOL, key
    # Losses: MatConvNet sums over images and the 2x2 positions; labels are 1-based there.
    label = torch.from_numpy(io["label"].ravel()) - 1
    label_2 = torch.from_numpy(io["label_2"].ravel()) - 1
    same = torch.from_numpy(io["label_f"].ravel()) - 1
    loss = SiameseReID.loss(out, label, label_2, same, reduction="sum")
    for name in ("objective", "objective_2", "objective_final"):
        assert rel_err(getattr(loss, name), io[name]) <= TOL, name
    expected_total = 0.5 * io["objective"] + 0.5 * io["objective_2"] + io["objective_final"]
    assert rel_err(loss.total, expected_total) <= TOL
    assert class_error(out.prediction_2, label_2).item() == io["top1err_2"].item()
    assert class_error(out.dist_prediction, same).item() == io["top1err_cmopare"].item()
    # The caffe reduction is the same sum divided by N*H*W.
    mean = softmax_log_loss(out.dist_prediction, same, "mean")
    assert rel_err(mean, io["objective_final"] / 8) <= TOL


def test_two_stream_test_time_lrn_is_exact_l2() -> None:
    """pool5n = dagnn.LRN([4096 0 1 0.5]) on pool5: L2 over channels at each position."""
    from porting.layers import MatConvNetLRN

    io = np.load(IO / "mcn_2stream_256.npz")
    lrn = MatConvNetLRN((4096, 0, 1, 0.5))
    for src, dst in (("pool5", "pool5n"), ("pool5_2", "pool5n_2")):
        assert rel_err(lrn(torch.from_numpy(io[src])), io[dst]) <= TOL


def test_two_stream_embed_market_recipe() -> None:
    """embed() = (sum of per-position L2 maps) + same for the flip, then L2 (crazy script)."""
    io = np.load(IO / "mcn_2stream_256.npz")
    model = _two_stream()
    x = torch.from_numpy(io["data"])
    feat = model.embed(x, "market-matconvnet")
    with torch.no_grad():
        flipped = model.features(torch.flip(x, dims=[3]))
    ref = io["pool5n"].sum(axis=(2, 3))
    fl = flipped / flipped.norm(dim=1, keepdim=True)
    ref = ref + fl.sum(dim=(2, 3)).numpy()
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert rel_err(feat, ref) <= TOL
    assert torch.allclose(feat.norm(dim=1), torch.ones(2))
