"""``train``: the paper's training recipe (porting.train, porting.train.pairs, porting.train.optim).

Everything runs on CPU on small generated datasets in Market-1501 layout. The generated
"persons" (coloured torso / legs / pattern on a plain background, random shifts and flips) are
written by :func:`write_market`; ``porting.validation.mini.build_mini_market`` is not used for
training because its train split has two images per identity (too few to learn or to hold
out). Models are tiny: a 8/16-channel CaffeNet (for learning, resume and DDP) and the converted
narrow two-stream ResNet-50 fixture (built by the authors' own scripts under MatConvNet) for
the per-parameter rates and the hand-computed MatConvNet step.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from porting.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from porting.layers import MatConvNetBatchNorm
from porting.models import build_model
from porting.train import (
    BatchStream,
    TrainConfig,
    TrainData,
    Trainer,
    assemble,
    get_train_recipe,
    labels_in_file_order,
    main,
    matconvnet_holdout,
)
from porting.train.optim import (
    CaffeSGD,
    MatConvNetSGD,
    ParamRule,
    caffe_step_lr,
    matconvnet_epoch_lr,
    matconvnet_rules,
    parse_schedule,
)
from porting.train.pairs import DXYPairSampler, PairSampler, dividor, matlab_round, num_positives

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "matconvnet"
ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------
# Generated data
# --------------------------------------------------------------------------------------------

PALETTE = np.array([[220, 40, 40], [40, 160, 60], [40, 70, 220], [230, 210, 40],
                    [240, 240, 240], [30, 30, 30], [150, 60, 200], [250, 140, 30]], np.float32)


def _person(rng: np.random.Generator, ident: int) -> np.ndarray:
    torso, legs, pattern = PALETTE[ident % 8], PALETTE[(ident // 8 + 3 * ident) % 8], \
        (ident // 3) % 3
    img = np.empty((128, 64, 3), np.float32)
    img[:] = 128 + rng.uniform(-10, 10, 3)
    dy, dx = (int(v) for v in rng.integers(-6, 7, size=2))
    top, mid, bot, left, right = 28 + dy, 70 + dy, 120 + dy, 14 + dx, 50 + dx
    img[12 + dy:28 + dy, 24 + dx:40 + dx] = [200, 160, 130]
    img[top:mid, left:right] = torso
    if pattern == 1:
        img[top:mid:6, left:right] = legs * 0.5 + 60
    elif pattern == 2:
        img[top:mid, 28 + dx:36 + dx] = 255 - torso
    img[mid:bot, left + 2:right - 2] = legs
    img = img * rng.uniform(0.95, 1.05) + rng.normal(0, 6, img.shape)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_market(root: Path, train_ids, per_id: int, test_ids=(), gallery_per_id: int = 2,
                 seed: int = 0) -> Path:
    """A Market-1501-layout folder (``PPPP_cCsS_FFFFFF_BB.jpg``) of generated persons."""
    rng = np.random.default_rng(seed)
    for d in ("bounding_box_train", "query", "bounding_box_test"):
        (root / d).mkdir(parents=True, exist_ok=True)
    n = 0

    def save(folder: str, pid: int, cam: int) -> None:
        nonlocal n
        n += 1
        Image.fromarray(_person(rng, pid)).save(
            root / folder / f"{pid:04d}_c{cam}s1_{n:06d}_00.jpg", quality=95)

    for pid in train_ids:
        for j in range(per_id):
            save("bounding_box_train", pid, 1 + j % 6)
    for pid in test_ids:
        save("query", pid, 1)
        for j in range(gallery_per_id):
            save("bounding_box_test", pid, 2 + j % 5)
    return root


TINY_CAFFENET = {"name": "caffenet", "kwargs": {
    "semantics": "matconvnet", "num_classes": None, "widths": [8, 16, 16, 16, 16],
    "fc_width": 32, "dropout": 0.0}}

# A recipe for the tiny net: the MatConvNet rules with rates that a random 32-wide CaffeNet
# can follow in a few dozen steps (the recipe's own rates assume an ImageNet backbone).
FAST = ["--arch", "caffenet", "--batch-size", "16", "--dropout", "0", "--device", "cpu",
        "--backbone-lr-mult", "0.0001,0.0001", "--fc751-lr-mult", "0.1,0.1",
        "--fc9-lr-mult", "0.1,0.1", "-q"]


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory) -> Path:
    """A backbone checkpoint in the project's format (as the converters write them)."""
    from porting.train import init_random_trunk

    model = build_model(TINY_CAFFENET)
    init_random_trunk(model, "matconvnet", torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.fc7.weight.mul_(0.1)  # keep the random features O(1), as ImageNet ones are
    path = tmp_path_factory.mktemp("init") / "caffenet_tiny.pth"
    save_checkpoint(path, make_checkpoint(model.state_dict(), arch=TINY_CAFFENET))
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def learn_data(tmp_path_factory) -> Path:
    return write_market(tmp_path_factory.mktemp("market"), range(1, 11), 10, range(40, 48))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return write_market(tmp_path_factory.mktemp("small"), range(1, 5), 4)


# --------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------


def test_dividor_schedule_paper_and_released():
    # d = min(5, 2*1.01^epoch): 1:1 at the start (24 of 48 positives), 1:4 only from epoch 93
    assert dividor(1) == pytest.approx(2.02)
    assert num_positives(48, 1) == 24
    assert num_positives(48, 75) == matlab_round(48 / (2 * 1.01 ** 75)) == 11
    assert num_positives(48, 93) == num_positives(48, 200) == 10
    # the released train_id_net_res_2stream.m has max(): 1:4 for the whole 75-epoch run
    assert {num_positives(48, e, "released") for e in range(1, 76)} == {10}
    assert matlab_round(2.5) == 3 and matlab_round(0.5) == 1  # MATLAB rounds halves up
    counts = [num_positives(48, e) for e in range(1, 100)]
    assert counts == sorted(counts, reverse=True)


def test_pair_sampler_properties():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), rng.integers(2, 15, size=12))
    sets = np.ones(len(labels), np.int64)
    sets[rng.choice(len(labels), 15, replace=False)] = 2
    for lab in range(12):  # keep >= 2 training images per identity
        idx = np.flatnonzero(labels == lab)
        sets[idx[:2]] = 1
    s = PairSampler(labels, sets, batch_size=10, seed=3)
    train = set(np.flatnonzero(sets == 1).tolist())
    for epoch in (1, 40, 100):
        batches = s.epoch(epoch)
        anchors = np.concatenate([b.anchors for b in batches])
        assert sorted(anchors.tolist()) == sorted(train)  # a permutation of the training set
        for b in batches:
            half = num_positives(len(b), epoch)
            assert (b.same[:half] == 0).all() and (b.same[half:] == 1).all()
            pos, neg = slice(0, half), slice(half, None)
            assert (b.partners[pos] != b.anchors[pos]).all()  # never itself
            assert (labels[b.partners[pos]] == labels[b.anchors[pos]]).all()
            assert (labels[b.partners[neg]] != labels[b.anchors[neg]]).all()
            assert set(b.partners.tolist()) <= train
            assert b.offset.min() >= 0 and b.offset.max() <= 32
        assert len(batches[-1]) == len(train) % 10 or len(batches[-1]) == 10
    # validation anchors pair with training images only
    for b in s.epoch(2, "val"):
        assert set(b.anchors.tolist()) <= set(np.flatnonzero(sets == 2).tolist())
        assert set(b.partners.tolist()) <= train
        half = num_positives(len(b), 2)
        assert (labels[b.partners[:half]] == labels[b.anchors[:half]]).all()
    # determinism: (seed, epoch) fixes everything; another epoch or seed differs
    a, b = s.epoch(5), PairSampler(labels, sets, 10, seed=3).epoch(5)
    assert all(x.to_json() == y.to_json() for x, y in zip(a, b, strict=True))
    assert a[0].to_json() != s.epoch(6)[0].to_json()
    assert a[0].to_json() != PairSampler(labels, sets, 10, seed=4).epoch(5)[0].to_json()


def test_pair_sampler_uniform_partners():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    s = PairSampler(labels, np.ones(9, np.int64), batch_size=9, seed=0)
    rng = np.random.default_rng(1)
    anchors = np.zeros(30000, np.int64)  # image 0, identity 0
    pos = np.bincount(s.positives(anchors, rng), minlength=9) / len(anchors)
    np.testing.assert_allclose(pos[[1, 2]], 0.5, atol=0.02)  # rand_same_class: not itself
    assert pos[0] == 0 and pos[3:].sum() == 0
    neg = np.bincount(s.negatives(anchors, rng), minlength=9) / len(anchors)
    np.testing.assert_allclose(neg[3:], 1 / 6, atol=0.02)  # rand_diff_class: image-uniform
    with pytest.raises(ValueError, match="single training image"):
        PairSampler(np.array([0, 0, 1]), np.ones(3), 2)


def test_dxy_sampler_schedule_and_state():
    labels = np.repeat(np.arange(5), 4)
    s = DXYPairSampler(labels, batch_size=4, seed=0)
    for _ in range(5):  # 20 partner draws = one "epoch" of 20 images
        s.next_batch()
    assert s.neg_fraction == pytest.approx(1.01) and s.pos_fraction == 1.0
    state = json.loads(json.dumps(s.state_dict()))
    t = DXYPairSampler(labels, batch_size=4, seed=0)
    t.load_state_dict(state)
    for _ in range(3):
        a, b = s.next_batch(), t.next_batch()
        assert a.to_json() == b.to_json()
        assert ((labels[a.anchors] == labels[a.partners]) == (a.same == 0)).all()
    for _ in range(2000):
        s.next_batch()
    assert s.neg_fraction == 4.0  # neg_limit


# --------------------------------------------------------------------------------------------
# Data rules
# --------------------------------------------------------------------------------------------


def test_labels_and_holdout_rules():
    assert labels_in_file_order(["0002", "0002", "0007", "0011", "0011"]).tolist() == \
        [0, 0, 1, 2, 2]
    labels = np.repeat(np.arange(40), np.r_[np.full(20, 12), np.full(19, 5), [30]])
    sets = matconvnet_holdout(labels, seed=0)
    held = np.flatnonzero(sets == 2)
    counts = np.bincount(labels)
    assert len(held) > 0 and (counts[labels[held]] >= 10).all()
    assert (sets[labels == 39] == 1).all()  # prepare_data.m: cc = [cc; 9] -> last id kept
    assert len(held) <= round(0.1 * len(labels))  # randi draws with replacement
    np.testing.assert_array_equal(sets, matconvnet_holdout(labels, seed=0))


def test_assemble_follows_each_framework():
    cache = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    off, flip = np.array([[1, 2]]), np.array([True])
    mcn = assemble(cache, np.array([1]), off, flip, 4, "matconvnet")[0]
    # vl_imreadjpeg 'Flip' mirrors the image, then the crop is taken at (1, 2)
    np.testing.assert_array_equal(mcn, cache[1, :, ::-1][1:5, 2:6])
    caffe = assemble(cache, np.array([1]), off, flip, 4, "caffe")[0]
    np.testing.assert_array_equal(caffe, cache[1, 1:5, 2:6][:, ::-1])


def test_recipes_carry_the_sources_numbers():
    r = get_train_recipe("matconvnet", "resnet50")
    assert (r.batch_size, r.epochs, r.crop, r.max_offset) == (48, 75, 224, 32)
    assert r.lr_schedule == tuple([0.1] * 70 + [0.01] * 5)
    assert (r.loss_weights, r.reduction, r.dropout) == ((0.5, 0.5, 1.0), "sum", 0.9)
    assert (r.momentum, r.weight_decay) == (0.9, 5e-4)
    assert r.mean == (105.6920, 99.1345, 97.9152)
    assert (get_train_recipe("matconvnet", "caffenet").epochs,
            get_train_recipe("matconvnet", "caffenet").batch_size,
            get_train_recipe("matconvnet", "caffenet").crop) == (155, 128, 227)
    assert (get_train_recipe("matconvnet", "vgg16").epochs,
            get_train_recipe("matconvnet", "vgg16").batch_size) == (65, 48)
    d = get_train_recipe("caffe-dxy", "resnet50")
    assert (d.batch_size, d.iter_size, d.base_lr, d.stepsize, d.max_iter) == \
        (16, 4, 0.001, 16000, 18000)
    assert (d.loss_weights, d.reduction, d.dropout, d.colour) == \
        ((0.5, 0.5, 0.5), "mean", 0.0, "BGR")
    assert (get_train_recipe("caffe-dxy", "vgg16").batch_size,
            get_train_recipe("caffe-dxy", "vgg16").iter_size) == (36, 3)
    assert parse_schedule("0.1*70,0.01*5") == list(r.lr_schedule)
    assert matconvnet_epoch_lr(list(r.lr_schedule), 70) == 0.1
    assert matconvnet_epoch_lr(list(r.lr_schedule), 71) == 0.01
    assert matconvnet_epoch_lr(list(r.lr_schedule), 90) == 0.01  # min(epoch, numel)
    assert caffe_step_lr(0.001, 0.1, 16000, 15999) == 0.001
    assert caffe_step_lr(0.001, 0.1, 16000, 16000) == pytest.approx(1e-4)


# --------------------------------------------------------------------------------------------
# Per-parameter rates against the authors' own network
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_stream_ckpt(tmp_path_factory) -> Path:
    from porting.converters.matconvnet import main as convert

    out = tmp_path_factory.mktemp("converted") / "two_stream.pth"
    assert convert([str(FIXTURES / "resnet52_2stream_narrow" / "model.mat"), "-o", str(out),
                    "-q"]) == 0
    return out


def test_matconvnet_rates_match_the_authors_saved_network(two_stream_ckpt):
    """The fixture was built by running resnet52_market.m / resnet52_2stream.m (with the
    bundled initParams.m) under MatConvNet: its params(i).learningRate are the recipe's."""
    from porting.converters.matconvnet.model import read_matconvnet
    from porting.train import build_model_for

    mat = read_matconvnet(FIXTURES / "resnet52_2stream_narrow" / "model.mat")
    recipe = get_train_recipe("matconvnet", "resnet50")
    model, _, how = build_model_for(recipe, 751, init=str(two_stream_ckpt))
    assert "two-stream" in how
    rules = matconvnet_rules(model)
    assert [r.source_name for r in rules] == list(mat.params)  # MatConvNet's order and names
    for r in rules:
        assert r.lr_mult == mat.params[r.source_name].learningRate, r.source_name
        assert r.wd_mult == 1.0
    kinds = {r.source_name: r.method for r in rules}
    assert kinds["bn_conv1_moments"] == "average" and kinds["conv1_filter"] == "gradient"
    # the same order for the ImageNet DagNN the recipe starts from (fc1000 removed)
    imagenet = read_matconvnet(FIXTURES / "resnet50_narrow" / "model.mat")
    trunk_names = [r.source_name for r in rules if r.key.startswith("trunk.")]
    assert trunk_names == [n for n in imagenet.params if not n.startswith("fc1000")]


def _tiny_data(n_ids: int = 5, per_id: int = 2, size: int = 256, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    names = [f"{lab + 1:04d}_c{1 + i % 6}s1_{i:06d}_00.jpg" for i, lab in enumerate(labels)]
    data = TrainData(items=[None] * len(labels), names=names, pids=labels + 1,
                     camids=np.array([1 + i % 6 for i in range(len(labels))]), labels=labels,
                     sets=np.ones(len(labels), np.int64), dataset="market1501", root="")
    cache = rng.integers(0, 256, size=(len(labels), size, size, 3), dtype=np.uint8)
    return data, cache


def test_one_step_is_matconvnets_sgd(two_stream_ckpt, tmp_path):
    """One cnn_train_dag iteration, computed by hand from the gradients: summed weighted
    losses, der/batchSize + decay*w, momentum (rate outside it), per-parameter rates, and the
    'average' update of the BatchNorm moments with the two streams' batch moments."""
    data, cache = _tiny_data()
    cfg = TrainConfig(data_root="", out=str(tmp_path), arch="resnet50",
                      init=str(two_stream_ckpt), batch_size=2, device="cpu", quiet=True,
                      holdout="none")
    tr = Trainer(cfg, data=data, cache=cache)
    model, opt = tr.model, tr.opt
    assert isinstance(opt, MatConvNetSGD)
    gen = torch.Generator().manual_seed(1)
    for buf in opt.buffers.values():  # a non-zero momentum, as after earlier steps
        buf.copy_(torch.randn(buf.shape, generator=gen) * 1e-3)
    mom0 = {k: v.clone() for k, v in opt.buffers.items()}
    w0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    reference = copy.deepcopy(model)
    # record what the trainer's backward produced and what each BatchNorm saw
    grads: dict[str, torch.Tensor] = {}
    bn_inputs: dict[str, list[torch.Tensor]] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(
        lambda m, i, o: bn_inputs.setdefault(names[m], []).append(i[0].detach().clone()))
        for m in model.modules() if isinstance(m, MatConvNetBatchNorm)]
    real_step = opt.step

    def spy(*args, **kwargs):
        grads.update({k: p.grad.detach().clone() for k, p in model.named_parameters()})
        return real_step(*args, **kwargs)

    opt.step = spy
    batch = tr.sampler.epoch(1)[0]
    stream = BatchStream(cache, data.labels, [batch], tr.recipe, tr.device)
    step = next(iter(stream))
    stream.close()
    lr = 0.1
    torch.manual_seed(123)
    stats = tr.train_step_matconvnet(step, lr)
    for h in hooks:
        h.remove()

    # the loss, independently: same dropout masks (same seed), sums, weights 0.5/0.5/1
    torch.manual_seed(123)
    with torch.no_grad():
        out = reference(step.x1, step.x2)
    ce = [F.cross_entropy(o.flatten(1), t, reduction="sum") for o, t in
          ((out.prediction, step.label), (out.prediction_2, step.label_2),
           (out.dist_prediction, step.same))]
    np.testing.assert_allclose(stats[1:4].numpy(), [c.item() for c in ce], rtol=1e-5)
    assert stats[0] == 2

    # expected rates from the parity argument of resnet52_market.m (written out, not computed
    # by porting.train.optim): conv1 filter 0.001 / bias 0.02, then every filter 0.02, BN mult
    # 0.001,
    # BN bias 0.02, moments 0.001; fc751 and fc9 0.01 / 0.2
    def rate(key: str) -> float:
        if key in ("trunk.conv1.weight",):
            return 0.001
        if key.endswith(".mult") or key.endswith(".moments"):
            return 0.001
        if key.startswith(("fc751", "fc9")):
            return 0.01 if key.endswith("weight") else 0.2
        return 0.02  # conv filters, conv1 bias and BN biases

    state = model.state_dict()
    n_checked = 0
    for key, w in w0.items():
        if key.endswith(".moments"):
            mod = key.rsplit(".", 1)[0].removeprefix("trunk.")
            calls = bn_inputs["trunk." + mod]
            assert len(calls) == 2  # the two streams
            ms = []
            for x in calls:
                x = x.double()
                mean = x.mean(dim=(0, 2, 3))
                sigma = torch.sqrt(((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))
                                   + 1e-5)
                ms.append(torch.stack([mean, sigma], 1))
            expected = (1 - 0.001) * w.double() + 0.001 * (ms[0] + ms[1]) / 2
            torch.testing.assert_close(state[key].double(), expected, rtol=1e-5, atol=1e-6)
        else:
            g = grads[key].double()
            v = 0.9 * mom0[key].double() - (g / 2 + 5e-4 * w.double())
            expected = w.double() + lr * rate(key) * v
            torch.testing.assert_close(state[key].double(), expected, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(opt.buffers[key].double(), v, rtol=1e-5, atol=1e-8)
        n_checked += 1
    assert n_checked == len(w0)


def test_caffe_sgd_step_by_hand():
    """SGDSolver::ApplyUpdate: diff/iter_size + decay*w; history = rate*lr_mult*diff +
    momentum*history; w -= history (the rate inside the momentum)."""
    lin = torch.nn.Linear(3, 2)
    rules = [ParamRule("weight", "gradient", 1.0, 1.0), ParamRule("bias", "gradient", 2.0, 0.0)]
    opt = CaffeSGD(lin, rules, momentum=0.9, weight_decay=5e-4)
    opt.buffers["weight"].fill_(0.01)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    lin.weight.grad = torch.full_like(w0, 2.0)
    lin.bias.grad = torch.full_like(b0, -1.0)
    opt.step(rate=0.1, iter_size=4)
    hw = 0.1 * (2.0 / 4 + 5e-4 * w0) + 0.9 * 0.01
    hb = 0.1 * 2.0 * (-1.0 / 4) + 0.0
    torch.testing.assert_close(lin.weight.detach(), w0 - hw)
    torch.testing.assert_close(lin.bias.detach(), b0 - hb)


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def test_training_learns_and_writes_everything(learn_data, tiny_init, cache_dir, tmp_path):
    out = tmp_path / "run"
    rc = main([str(learn_data), "-o", str(out), "--init", str(tiny_init), "--lr", "1*4",
               "--cache-dir", str(cache_dir), *FAST])
    assert rc == 0
    hist = json.loads((out / "log.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for s in ("objective", "objective_2", "objective_final"):
        assert hist[-1][f"train_{s}"] < 0.8 * hist[0][f"train_{s}"], s
    assert hist[0]["val_pairs"] > 0  # prepare_data.m's held-out images, evaluated each epoch
    # rank-1 on the generated test split (8 identities, 2 gallery images each: chance 1/8)
    assert hist[-1]["eval_split"] == "test"
    assert hist[-1]["eval_rank1"] >= 0.5
    assert hist[-1]["eval_method"].startswith("validate")  # the validate command itself
    assert json.loads((out / "validate-epoch-4.json").read_text())["n_query"] == 8
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,lr,dividor")
    # the checkpoint is the project's format, loadable like any converted one
    import porting

    net = porting.load(out / "net-epoch-4.pth")
    ck = load_checkpoint(out / "net-epoch-4.pth")
    assert ck["recipe"] == "pool5-l2" and ck["arch"]["name"] == "siamese"
    assert ck["arch"]["kwargs"]["num_ids"] == 10
    assert ck["training"]["epoch"] == 4 and ck["meta"]["label_pids"] == list(range(1, 11))
    with torch.no_grad():
        f = net.embed(torch.zeros(2, 3, 227, 227), "pool5-l2")
    assert f.shape == (2, 32)


def test_resume_is_bit_identical(small_data, tiny_init, cache_dir, tmp_path):
    args = [str(small_data), "--init", str(tiny_init), "--lr", "1*2", "--cache-dir",
            str(cache_dir), "--eval-split", "none", "--holdout", "none", *FAST,
            "--dropout", "0.5", "--batch-size", "6"]
    assert main([*args, "-o", str(tmp_path / "a"), "--epochs", "2"]) == 0
    assert main([*args, "-o", str(tmp_path / "b"), "--epochs", "1"]) == 0
    assert main([*args, "-o", str(tmp_path / "b"), "--epochs", "2"]) == 0  # resumes epoch 1
    a = load_checkpoint(tmp_path / "a" / "net-epoch-2.pth")
    b = load_checkpoint(tmp_path / "b" / "net-epoch-2.pth")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k, v in a["training"]["optimizer"]["buffers"].items():
        assert torch.equal(v, b["training"]["optimizer"]["buffers"][k]), k
    strip = [[{k: v for k, v in row.items() if k not in ("time_s", "pairs_per_s")}
              for row in ck["training"]["history"]] for ck in (a, b)]
    assert strip[0] == strip[1]


def test_ddp_two_processes_match_one(small_data, tiny_init, cache_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): same global batches and pairs on every process,
    gradients summed over processes, the same update as one process to rounding. (The tiny
    CaffeNet has no BatchNorm; with BatchNorm each process normalises its own half-batch, as
    MatConvNet does on several GPUs, so the two runs would differ by more than rounding.)"""
    args = [str(small_data), "--init", str(tiny_init), "--lr", "1*1", "--epochs", "1",
            "--cache-dir", str(cache_dir), "--eval-split", "none", "--holdout", "none",
            "--log-pairs", *FAST, "--batch-size", "8"]
    assert main([*args, "-o", str(tmp_path / "one")]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "porting.train", *args, "-o", str(tmp_path / "two")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    pairs = (one / "pairs.train.rank0.jsonl").read_text()
    assert pairs.count("\n") == 2  # 16 images, batches of 8 pairs
    assert (two / "pairs.train.rank0.jsonl").read_text() == pairs
    assert (two / "pairs.train.rank1.jsonl").read_text() == pairs
    a, b = load_checkpoint(one / "net-epoch-1.pth"), load_checkpoint(two / "net-epoch-1.pth")
    assert b["training"]["world_size"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(b["state_dict"][k], a["state_dict"][k], rtol=1e-4, atol=1e-6)
    ha, hb = a["training"]["history"][0], b["training"]["history"][0]
    assert ha["train_pairs"] == hb["train_pairs"] == 16
    for s in ("objective", "objective_2", "objective_final"):
        assert math.isclose(ha[f"train_{s}"], hb[f"train_{s}"], rel_tol=1e-5)


def test_caffe_dxy_recipe_runs(small_data, cache_dir, tmp_path):
    """D-X-Y's recipe end to end on a random Caffe-semantics CaffeNet: iter_size passes per
    update, frozen BatchNorm rule set, mean losses, no held-out set."""
    out = tmp_path / "dxy"
    rc = main([str(small_data), "-o", str(out), "--recipe", "caffe-dxy", "--arch", "caffenet",
               "--trunk-kwargs", json.dumps({"widths": [8, 16, 16, 16, 16], "fc_width": 32}),
               "--batch-size", "4", "--iter-size", "2", "--max-iter", "3", "--device", "cpu",
               "--cache-dir", str(cache_dir), "--eval-split", "none", "-q"])
    assert rc == 0
    ck = load_checkpoint(out / "net-epoch-2.pth")  # 16 images / (4 x 2) = 2 iterations/epoch
    assert ck["training"]["iteration"] == 3 and ck["recipe"] == "caffe-dxy"
    assert ck["preprocess"]["colour"] == "BGR"
    assert ck["training"]["sampler"]["kind"] == "dxy"
    assert ck["training"]["history"][0]["train_pairs"] == 16  # 2 iterations x 2 x 4 pairs


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main([str(tmp_path), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "bounding_box_train" in capsys.readouterr().err
