"""The registry of published figures against statements in the paper's own text."""

from __future__ import annotations

import pytest

from porting.validation.published import PUBLISHED, targets


def _v(key: str) -> float:
    return next(p.value for p in PUBLISHED if p.key == key)


def test_keys_unique_and_fields_known() -> None:
    assert len({p.key for p in PUBLISHED}) == len(PUBLISHED)
    for p in PUBLISHED:
        assert p.metric in {"mAP", "rank1", "rank5", "rank10"}
        assert 0 < p.value <= 100
        assert p.source


@pytest.mark.parametrize("arch,gain", [("caffenet", 11.25), ("vgg16", 5.14), ("resnet50", 5.82)])
def test_rank1_gains_stated_in_the_text(arch: str, gain: float) -> None:
    """§4.2: I+V improves rank-1 over the identification baseline by these points."""
    diff = _v(f"paper/t2/{arch}/I+V/rank1") - _v(f"paper/t2/{arch}/I/rank1")
    assert diff == pytest.approx(gain, abs=1e-9)


def test_table6_relative_map_drop() -> None:
    """§4.4: 'a relative mAP drop of 24.4%' from 19,732 to 519,732 gallery images."""
    drop = 1 - _v("paper/t6/519732/I+V/mAP") / _v("paper/t6/19732/I+V/mAP")
    assert round(100 * drop, 1) == 24.4


def test_targets_filter() -> None:
    sq = targets("market1501", "resnet50", protocol="single-query")
    assert {p.key for p in sq} >= {"paper/t2/resnet50/I+V/rank1", "readme/sq/mAP"}
    assert all(p.dataset == "market1501" and p.arch == "resnet50" for p in sq)
    assert len(targets("cuhk03", "resnet50", protocol="single-shot")) == 4


def test_every_figure_names_a_known_recipe_and_a_protocol_validate_runs() -> None:
    from porting.recipes import RECIPES
    from porting.validation.published import MODELS, PROTOCOLS

    for p in PUBLISHED:
        assert p.recipe == "" or p.recipe in RECIPES, p.key
        assert p.protocol in PROTOCOLS or p.protocol.startswith("gallery="), p.key
        assert p.model in MODELS, p.key


def test_figures_attached_to_the_script_that_made_them() -> None:
    by_key = {p.key: p for p in PUBLISHED}
    # the paper's ResNet-50 figures: the v1.0 test code; the README's: the "crazy" script
    for key in ("paper/t2/resnet50/I+V/rank1", "paper/t6/519732/I+V/mAP",
                "paper/contrastive/mAP"):
        assert by_key[key].recipe == "market-matconvnet-v1"
    assert by_key["readme/sq/rank1"].recipe == "market-matconvnet"
    assert by_key["readme/mq-avg/rank1"].protocol == "multi-query avg (as printed)"
    assert by_key["readme/mq-max-rerank/mAP"].protocol == "multi-query max + 1-NN QE"
    # D-X-Y: extraction without --center_only, its labels kept
    assert {k: (by_key[k].protocol, by_key[k].note) for k in
            ("dxy/caffenet/mAP", "dxy/vgg16/mAP")} == {
        "dxy/caffenet/mAP": ("dxy euclidean", "labelled [Euclidean] there"),
        "dxy/vgg16/mAP": ("dxy cosine", "labelled [Failed] there")}
    assert all(by_key[f"dxy/{a}/rank1"].recipe == "caffe-dxy-oversample"
               for a in ("caffenet", "vgg16", "resnet50"))
    # section 4.2's camera-pair summary is registered
    assert (_v("paper/fig6/cross-camera/mAP"), _v("paper/fig6/cross-camera/rank1")) == (
        48.42, 54.42)


def test_select_every_variant() -> None:
    from porting.validation.published import select

    for model, n in (("I+V", 2), ("I", 2), ("V", 2), ("contrastive", 2)):
        sq = select("market1501", "resnet50", model, ["single-query"], "paper/t2/"
                    if model != "contrastive" else "paper/contrastive")
        assert len(sq) == n and all(p.model == model for p in sq)
    assert {p.key for p in select("market1501", "resnet50", "I+V", ["camera pairs"])} == {
        "paper/fig6/cross-camera/mAP", "paper/fig6/cross-camera/rank1"}
    # a recipe filter keeps the figures of that recipe and those of unknown recipe
    v1 = select("market1501", "resnet50", "I+V", recipe="market-matconvnet-v1")
    assert not any(p.key.startswith("readme/") for p in v1)
    assert any(p.key.startswith("paper/t3/") for p in v1)
