"""Training that cannot fail silently (issue #23): a loss that becomes NaN/Inf stops the run
with one line naming the epoch, the iteration and the loss, exit 1, the last finite
checkpoint kept and none with non-finite weights written; a crop too small for the backbone is
refused before anything is resized, naming ``--crop`` and the smallest size it accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from porting.checkpoint import load_checkpoint
from porting.models import build_model
from porting.train import main
from porting.train.guard import DivergedError, check_losses, check_weights
from porting.train.model import smallest_input, trunk_spec

TRUNK = '{"widths": [8, 16, 16, 16, 16], "fc_width": 32}'
TINY = ["--arch", "caffenet", "--trunk-kwargs", TRUNK, "--batch-size", "4", "--device", "cpu",
        "--eval-split", "none", "--holdout", "none", "-q"]
LINE = re.compile(r"^error: loss became (NaN|infinite) at epoch (\d+), iteration (\d+) "
                  r"\(overall \d+\) \((identification loss, (first|second) image|verification "
                  r"loss)\)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from test_train import write_market

    return write_market(tmp_path_factory.mktemp("guard") / "market", range(1, 6), 4)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_diverging_run_stops_and_keeps_its_last_finite_checkpoint(data, tmp_path, capsys):
    """Epoch 1 at a tiny rate, then a rate no net survives: the run stops in epoch 2 (or
    later), exit 1, and what is on disk is epoch 1's finite checkpoint."""
    out = tmp_path / "run"
    rc = main([str(data), "-o", str(out), "--lr", "0.00001*1,100000*3", *TINY])
    line = _one_line(capsys)
    assert rc == 1, line
    m = LINE.match(line)
    assert m, line
    epoch = int(m.group(2))
    assert epoch >= 2 and int(m.group(3)) >= 1
    kept = sorted(out.glob("net-epoch-*.pth"))
    assert [p.name for p in kept] == [f"net-epoch-{e}.pth" for e in range(1, epoch)]
    for path in kept:
        ck = load_checkpoint(path)
        assert all(torch.isfinite(t).all() for t in ck["state_dict"].values()
                   if t.is_floating_point())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_diverging_first_epoch_leaves_no_folder(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([str(data), "-o", str(out), "--lr", "1000000*2", *TINY]) == 1
    assert LINE.match(_one_line(capsys))
    assert not out.exists()


def test_guards_name_what_is_not_finite():
    stats = torch.tensor([4.0, 1.0, 2.0, float("inf"), 0.0, 0.0, 0.0])
    with pytest.raises(DivergedError, match=r"infinite at epoch 3, iteration 7 .*verification"):
        check_losses(stats, 3, 7, 20)
    check_losses(torch.tensor([4.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0]), 1, 1, 1)  # finite: fine
    weights = {"conv1.weight": torch.zeros(2), "fc.weight": torch.tensor([0.0, float("nan")]),
               "steps": torch.tensor([3])}
    with pytest.raises(DivergedError, match=r"epoch 5 \(fc\.weight\)"):
        check_weights(weights.items(), 5)


def test_crop_too_small_names_the_smallest_size(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([str(data), "-o", str(out), "--crop", "112", *TINY]) == 2
    line = _one_line(capsys)
    m = re.match(r"^error: --crop 112 is too small for --arch caffenet: it needs at least "
                 r"(\d+)x\1$", line)
    assert m, line
    least = int(m.group(1))
    assert not out.exists()
    # The size is right: the backbone runs on real tensors at it, and not one pixel below.
    spec, _ = trunk_spec("caffenet", "matconvnet", {"widths": [8, 16, 16, 16, 16],
                                                    "fc_width": 32})
    trunk = build_model(spec).eval()
    with torch.no_grad():
        trunk(torch.zeros(1, 3, least, least))
        with pytest.raises((RuntimeError, ValueError)):
            trunk(torch.zeros(1, 3, least - 1, least - 1))
    assert smallest_input(spec) == least


def test_detect_anomaly_names_the_operation_and_its_forward_site(data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main([str(data), "-o", str(out), "--lr", "1000000*2", "--detect-anomaly", *TINY])
    line = _one_line(capsys)
    assert rc == 1, line
    m = re.match(r"^error: Function '(\w+)' returned nan values in its \d+\w* output; made in "
                 r"the forward pass at (\S+\.py):(\d+) \((\w+)\) \(--detect-anomaly\)$", line)
    assert m, line
    assert Path(m.group(2)).parts[0] in ("porting", "models")  # a frame of this project
    assert not out.exists()
