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
