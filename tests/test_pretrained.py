"""The folder form (save_pretrained / from_pretrained), its config and model card, Hub ids read
offline through huggingface_hub's cache, and the torch.hub entry points."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import porting
from porting.checkpoint import read_checkpoint, record_measurement, sha256_file
from porting.convert_checkpoint import same
from porting.converters.compare import main as compare
from porting.models import VGG16, CaffeNet, ResNet50, SiameseReID

from conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
CAFFENET = FIXTURES / "caffe" / "caffenet_narrow" / "weights.caffemodel"
DUMP = FIXTURES / "models" / "caffe_caffenet.npz"
OUTS = ["pool5", "pool5n", "prediction", "Dist_prediction"]


@pytest.fixture(scope="module")
def folder(ckpts, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "two_stream"
    porting.save_pretrained(porting.load(ckpts["two_stream"]), out)
    return out


def _x() -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(0).uniform(-100, 100, (1, 3, 256, 256))
                            .astype(np.float32))


def test_round_trip_bit_for_bit(ckpts, folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json",
                                                        "model.safetensors"]
    pth = ckpts["two_stream"]
    ours, theirs = porting.from_pretrained(folder), porting.load(pth)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and same(dict(a), dict(b))
    o1, o2 = ours(data=_x(), data_2=_x(), outputs=OUTS), theirs(data=_x(), data_2=_x(),
                                                                 outputs=OUTS)
    assert all(torch.equal(o1[k], o2[k]) for k in OUTS)
    # the checkpoint itself: every field of the .pth, the tensors bit for bit
    orig = torch.load(pth, weights_only=True)
    assert same(orig, read_checkpoint(folder / "model.safetensors"))
    # the canonical class too, and again through a module that from_pretrained built
    c1 = porting.from_pretrained(folder, canonical=True)
    assert isinstance(c1, SiameseReID)
    assert same(dict(c1.state_dict()), dict(porting.load(pth, canonical=True).state_dict()))
    again = folder.parent / "again"
    porting.save_pretrained(c1, again)
    assert same(dict(porting.from_pretrained(again).state_dict()), dict(c1.state_dict()))


def test_config_is_the_checkpoints(ckpts, folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    ck = read_checkpoint(ckpts["two_stream"])
    pre = ck["preprocess"]
    pc = cfg["pretrained_cfg"]
    assert cfg["library_name"] == "reid-porting" and cfg["architecture"] == "siamese_resnet50"
    assert cfg["arch"] == ck["arch"]
    assert pc["input_size"] == [3, *pre["input_size"]]
    assert pc["interpolation"] == pre["resize_method"] and pc["crop"] == pre["crop"]
    assert pc["mean"] == pre["mean"] and pc["colour_order"] == pre["colour"]
    assert pc["recipe"] == ck["recipe"] and pc["source"] == ck["source"]
    img = np.random.RandomState(2).randint(0, 256, (128, 64, 3), dtype=np.uint8)
    dim = porting.FeatureExtractor(ckpts["two_stream"], device="cpu")([img]).shape[1]
    assert cfg["num_features"] == pc["num_features"] == dim


def _card(path: Path, out: Path) -> str:
    porting.save_pretrained(path, out)
    return (out / "README.md").read_text()


def test_card_states_what_was_measured(ckpts, tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"
    porting.save_checkpoint(path, read_checkpoint(ckpts["caffe_caffenet"]))
    card = _card(path, tmp_path / "bare")
    assert re.match(r"---\nlibrary_name: reid-porting\n(#[^\n]*\n)?tags:\n- person-reid\n", card)
    assert f"| `weights.caffemodel` | `{sha256_file(CAFFENET)}` |" in card and "caffe" in card
    prototxt = CAFFENET.with_name("deploy.prototxt")
    assert f"| `deploy.prototxt` | `{sha256_file(prototxt)}` |" in card
    assert "No `compare` run is recorded" in card and "No `validate` run" in card
    assert "doi       = {10.1145/3159171}" in card

    report = tmp_path / "compare.json"
    assert compare([str(path), str(DUMP), "--json", str(report), "--record"]) == 0
    measured = json.loads(report.read_text())  # the same run's report, read independently
    card = _card(path, tmp_path / "compared")
    assert "No `compare` run" not in card and sha256_file(DUMP) in card
    for row in measured["rows"]:
        assert f"| `{row['name']}` | {row['max_rel']:.3g} |" in card

    recorded = read_checkpoint(path)["measurements"]["compare"]
    var = measured["rows"][0]["name"]
    before = f"| `{var}` | {measured['rows'][0]['max_rel']:.3g} |"
    recorded["worst_relative_error"][var] = measured["rows"][0]["max_rel"] * 7 + 1e-3
    record_measurement(path, "compare", recorded)
    card2 = _card(path, tmp_path / "changed")
    assert before not in card2
    assert f"| `{var}` | {measured['rows'][0]['max_rel'] * 7 + 1e-3:.3g} |" in card2
    record_measurement(path, "compare", {"rows": []})  # a form the card does not read
    assert "in a form this card does not read" in _card(path, tmp_path / "odd")


def test_card_states_published_figures_only_on_the_published_test_set(ckpts,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    shutil.copy(ckpts["caffe_caffenet"], path)
    row = {"key": "paper/t2/resnet50/I+V/mAP", "metric": "mAP", "protocol": "single-query",
           "ours": 60.12, "published": 59.87, "delta": 0.25, "within": True,
           "status": "compared", "source": "paper Table 2", "recipe": "market-matconvnet-v1"}
    run = {"dataset": "market1501", "recipe": "market-matconvnet-v1",
           "counts": {"query images": 3368, "gallery images": 19732},
           "published_test_set": {"is": True, "reason": None}, "published": [row]}
    record_measurement(path, "validate.market1501", run)
    card = _card(path, tmp_path / "a")
    assert "datasets:\n- \"market1501\"" in card
    assert "| mAP | single-query | 60.12 | 59.87 | +0.25 | yes | paper Table 2 |" in card
    run["published"] = [dict(row, ours=58.0, delta=-1.87, within=False)]
    record_measurement(path, "validate.market1501", run)
    card = _card(path, tmp_path / "b")
    assert "| mAP | single-query | 58.00 | 59.87 | -1.87 | no | paper Table 2 |" in card
    run["published_test_set"] = {"is": False, "reason": "29 gallery images, expected 19,732"}
    record_measurement(path, "validate.market1501", run)
    card = _card(path, tmp_path / "c")
    assert "not the published test set (29 gallery images" in card and "58.00" not in card


def test_validate_record_writes_the_measurement(ckpts, tmp_path: Path) -> None:
    from porting.validation.cli import main as validate
    from porting.validation.mini import build_mini_market

    root = build_mini_market(tmp_path / "mini") or tmp_path / "mini"
    path = tmp_path / "net.safetensors"
    porting.save_checkpoint(path, read_checkpoint(ckpts["caffe_caffenet"]))
    report = tmp_path / "v.json"
    assert validate(["--root", str(root), "--checkpoint", str(path), "--record", "-q",
                     "--feature-var", "fc7", "--json", str(report)]) == 0
    got = read_checkpoint(path)["measurements"]["validate.market1501"]
    full = json.loads(report.read_text())
    assert got["protocols"] == full["protocols"] and got["counts"] == full["counts"]
    assert got["published_test_set"]["is"] is False
    assert "not the published test set" in _card(path, tmp_path / "card")
    assert validate(["--root", str(root), "--features", str(report), str(report),
                     "--record"]) == 2


def test_hub_repo_id_read_offline_from_the_hub_cache(folder: Path, tmp_path: Path) -> None:
    """huggingface_hub's own snapshot resolution (local_files_only) on its cache layout."""
    hub = pytest.importorskip("huggingface_hub")
    commit = "0" * 40
    repo = tmp_path / "cache" / "models--someone--two-stream"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model = porting.from_pretrained("someone/two-stream", cache_dir=tmp_path / "cache",
                                    local_files_only=True)
    assert same(dict(model.state_dict()), dict(porting.from_pretrained(folder).state_dict()))
    with pytest.raises(porting.CheckpointError, match="cannot get the repository") as err:
        porting.from_pretrained("someone/absent", cache_dir=tmp_path / "cache",
                                local_files_only=True)
    assert "\n" not in str(err.value)
    card = hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "reid-porting" and card.data.tags == ["person-reid"]


def test_not_a_folder_or_repo_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(porting.CheckpointError, match="no model.safetensors"):
        porting.from_pretrained(tmp_path)
    with pytest.raises(porting.CheckpointError, match="not a folder written by"):
        porting.from_pretrained(tmp_path / "missing" / "deep" / "x")


def test_torch_hub_entry_points(ckpts, folder: Path, tmp_path: Path) -> None:
    st = tmp_path / "two.safetensors"
    porting.save_checkpoint(st, read_checkpoint(ckpts["two_stream"]))
    ref = porting.load(ckpts["two_stream"], canonical=True)
    for source in (st, folder):
        net = torch.hub.load(str(ROOT), "siamese_resnet50", source="local", checkpoint=source)
        assert isinstance(net, SiameseReID) and same(dict(net.state_dict()),
                                                     dict(ref.state_dict()))
    with pytest.raises(ValueError, match="not a caffenet"):
        torch.hub.load(str(ROOT), "caffenet", source="local", checkpoint=st)
    narrow = {"widths": (4, 8, 8, 8, 8), "fc_width": 16, "num_classes": None}
    assert isinstance(torch.hub.load(str(ROOT), "caffenet", source="local", **narrow),
                      CaffeNet)
    assert isinstance(torch.hub.load(str(ROOT), "vgg16", source="local", **narrow), VGG16)
    r = torch.hub.load(str(ROOT), "resnet50_caffe", source="local", width=2, num_classes=None)
    assert isinstance(r, ResNet50) and r.semantics == "caffe"
    s = torch.hub.load(str(ROOT), "siamese_resnet50", source="local", width=2, num_ids=5)
    assert isinstance(s, SiameseReID) and s.trunk.semantics == "matconvnet"
