"""The authors' hold-out rules: Market-1501 (``prepare_data.m``) and CUHK03
(``cuhk03-prepare-eval/prepare_imdb.m``) put back different identities."""

from __future__ import annotations

import numpy as np
import pytest

from porting.train import matconvnet_holdout
from porting.train.pairs import dividor


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def _drawn(labels: np.ndarray, seed: int) -> np.ndarray:
    """The indices the 10% draw picks, whatever the rule (identities with many images)."""
    return matconvnet_holdout(np.zeros_like(labels), seed, "cuhk03") == 2


@pytest.mark.parametrize("seed", range(5))
def test_cuhk03_puts_back_fewer_than_nine_true_counts(seed: int) -> None:
    labels = _labels([8, 9, 10, 9, 8] * 20)
    drawn = _drawn(labels, seed)
    sets = matconvnet_holdout(labels, seed, "cuhk03")
    counts = np.bincount(labels)[labels]
    assert np.array_equal(sets == 2, drawn & (counts >= 9))
    # the last identity has 8 images and is put back: no forced count of 9 for CUHK03
    assert not (sets[labels == labels.max()] == 2).any()


@pytest.mark.parametrize("seed", range(5))
def test_market_rule_is_unchanged(seed: int) -> None:
    labels = _labels([9, 10, 12, 9, 30] * 20)
    drawn = _drawn(labels, seed)
    sets = matconvnet_holdout(labels, seed)
    counts = np.bincount(labels)
    counts[-1] = 9  # prepare_data.m's bookkeeping: the last identity counts 9
    assert np.array_equal(sets == 2, drawn & (counts[labels] >= 10))
    assert not (sets[labels == labels.max()] == 2).any()  # 30 images, still never held out


def test_unknown_rule_and_v1_alias() -> None:
    with pytest.raises(ValueError, match="hold-out rule"):
        matconvnet_holdout(_labels([10, 10]), 0, "duke")
    assert all(dividor(e, "v1.0") == dividor(e, "released") == 5.0 for e in range(1, 93))
    assert dividor(1, "paper") == pytest.approx(2.02)
