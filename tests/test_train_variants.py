"""The loss variants of the paper's Table 2 (I, V, I+V) and Sec. 4.2 (contrastive
verification): which losses train, the contrastive loss itself, and what the checkpoint says
the variant should reach in the registry of published figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from porting.checkpoint import load_checkpoint
from porting.models.siamese import contrastive_loss, pair_distance
from porting.train import TrainConfig, main
from porting.train.recipe import VARIANT_MODEL, recipe_from
from porting.validation.published import PUBLISHED

from test_train import write_market


def test_contrastive_loss_against_its_definition_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(6, 8, 2, 2, generator=g), torch.randn(6, 8, 2, 2, generator=g)
    f2[:2] = f1[:2] + 0.01 * torch.randn(2, 8, 2, 2, generator=g)
    same = torch.tensor([0, 0, 1, 1, 0, 1])  # 0 = same identity, as the verification labels
    d = pair_distance(f1, f2)
    x1 = f1.double().sum(dim=(2, 3)).numpy()
    x2 = f2.double().sum(dim=(2, 3)).numpy()
    x1 /= np.linalg.norm(x1, axis=1, keepdims=True)
    x2 /= np.linalg.norm(x2, axis=1, keepdims=True)
    ref_d = np.linalg.norm(x1 - x2, axis=1)
    assert d.shape == (6, 1, 1, 1)
    np.testing.assert_allclose(d.reshape(-1).double().numpy(), ref_d, rtol=1e-5)
    y = (same.numpy() == 0).astype(np.float64)
    m = 0.7
    per = y * ref_d ** 2 + (1 - y) * np.maximum(0.0, m - ref_d) ** 2
    assert contrastive_loss(d, same, m, "sum").item() == pytest.approx(per.sum(), rel=1e-5)
    assert contrastive_loss(d, same, m, "mean").item() == pytest.approx(per.mean(), rel=1e-5)


@pytest.mark.parametrize(("losses", "weights"), [("I+V", (0.5, 0.5, 1.0)),
                                                 ("I", (0.5, 0.5, 0.0)),
                                                 ("V", (0.0, 0.0, 1.0))])
def test_loss_variants_switch_the_recipes_weights(losses, weights) -> None:
    r = recipe_from(TrainConfig(data_root="", out="", losses=losses))
    assert r.loss_weights == weights and r.losses == losses
    dxy = recipe_from(TrainConfig(data_root="", out="", recipe="caffe-dxy", losses=losses))
    assert dxy.loss_weights == tuple(0.5 if w else 0.0 for w in weights)  # D-X-Y: 0.5 each


def test_every_variant_names_a_registered_figure() -> None:
    models = {p.model for p in PUBLISHED if p.dataset == "market1501"}
    assert set(VARIANT_MODEL.values()) <= models
    with pytest.raises(ValueError, match="not a variant"):
        recipe_from(TrainConfig(data_root="", out="", losses="I", verification="contrastive"))


def test_contrastive_training_runs_and_records_its_variant(tmp_path) -> None:
    data = write_market(tmp_path / "m", train_ids=range(1, 5), per_id=4)
    out = tmp_path / "run"
    rc = main([str(data), "-o", str(out), "--arch", "caffenet", "--trunk-kwargs",
               json.dumps({"widths": [8, 16, 16, 16, 16], "fc_width": 32}), "--epochs", "1",
               "--batch-size", "8", "--verification", "contrastive", "--contrastive-margin",
               "0.5", "--holdout", "none", "--eval-split", "none", "--device", "cpu", "-q"])
    assert rc == 0
    ck = load_checkpoint(out / "net-epoch-1.pth")
    assert ck["meta"]["model_variant"] == "contrastive"
    assert ck["arch"]["kwargs"]["verification"] == "contrastive"
    assert ck["arch"]["kwargs"]["margin"] == 0.5
    row = ck["training"]["history"][0]
    # the verification objective is a (non-negative) contrastive loss, not a 2-way softmax
    assert 0.0 <= row["train_objective_final"] <= 4.0
    import porting

    net = porting.load(out / "net-epoch-1.pth", canonical=True)
    with torch.no_grad():
        y = net(torch.zeros(2, 3, 227, 227), torch.ones(2, 3, 227, 227))
    assert y.dist_prediction.shape == (2, 1, 1, 1)


def test_bad_variant_and_trunk_kwargs_are_one_line_errors(tmp_path, capsys) -> None:
    data = write_market(tmp_path / "m", train_ids=range(1, 3), per_id=2)
    assert main([str(data), "-o", str(tmp_path / "o"), "--trunk-kwargs",
                 '{"widths": [8, 16, 16, 16, 16], "fc_width": 32}', "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fc_width, widths not accepted by --arch resnet50" in err
    assert not (tmp_path / "o").exists()  # the failed run leaves no output folder
    assert main([str(data), "-o", str(tmp_path / "o"), "--trunk-kwargs", "{nope", "-q"]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_validate_compares_a_trained_variant_with_its_own_figures(tmp_path) -> None:
    """The checkpoint's variant (meta.model_variant) selects the registry's figures."""
    from porting.validation.cli import main as validate
    from porting.validation.mini import build_mini_market

    data = write_market(tmp_path / "m", train_ids=range(1, 4), per_id=4)
    rc = main([str(data), "-o", str(tmp_path / "run"), "--arch", "caffenet", "--trunk-kwargs",
               json.dumps({"widths": [8, 16, 16, 16, 16], "fc_width": 32}), "--epochs", "1",
               "--batch-size", "6", "--losses", "I", "--holdout", "none", "--eval-split",
               "none", "--device", "cpu", "-q"])
    assert rc == 0
    root = build_mini_market(tmp_path / "mini")
    out = tmp_path / "v.json"
    assert validate(["--root", str(root), "--checkpoint", str(tmp_path / "run" /
                     "net-epoch-1.pth"), "--json", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["model"] == "I"
