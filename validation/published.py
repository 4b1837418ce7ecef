"""Every published figure of the paper and its released code, with where it comes from, the
test set it was measured on and the recipe and protocol that produced it.

Values are percentages as printed. ``source`` cites the paper table or the README they come
from; ``recipe`` names the feature-extraction recipe of :mod:`porting.recipes` that produced
the figure ("" where no released script says), ``protocol`` the evaluation protocol (see
:data:`PROTOCOLS`), ``note`` what the source itself says about the figure (D-X-Y's
"[Euclidean]" / "[Failed]" labels) or what is assumed.

:data:`PUBLISHED_SPLITS` holds the published test sets by their counts;
:func:`split_mismatch` says why a loaded test set is not one of them, so that a figure is only
compared on the data it was measured on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    key: str
    value: float  # percent
    metric: str  # "mAP", "rank1", "rank5", "rank10"
    dataset: str  # "market1501", "market1501+500k", "cuhk03", "dukemtmc", "oxford5k"
    protocol: str  # one of PROTOCOLS' keys, or "gallery=119732" (Table 6)
    arch: str  # "caffenet", "vgg16", "resnet50"
    model: str  # "I+V" (the paper's), "I", "V", "contrastive"
    recipe: str  # porting.recipes name, or "" when not applicable/unknown
    source: str
    note: str = ""


#: Protocol of a figure -> what ``validate`` runs that measures it (usually the same name).
#: The paper's Table 3 does not say which pooling its multi-query rows used: both are shown.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "single-query": ("single-query",),
    "multi-query": ("multi-query avg", "multi-query max"),
    "multi-query avg (as printed)": ("multi-query avg (as printed)",),
    "multi-query max (as printed)": ("multi-query max (as printed)",),
    "multi-query max + 1-NN QE": ("multi-query max + 1-NN QE",),
    "camera pairs": ("camera pairs",),
    "single-shot": ("single-shot",),
    "multi-shot": ("multi-shot",),
    "full-image MAC": ("full-image MAC",),
    "dxy cosine": ("dxy cosine",),
    "dxy euclidean": ("dxy euclidean",),
}

MODELS = ("I+V", "I", "V", "contrastive")
V1 = "market-matconvnet-v1"  # the paper's ResNet-50 test code (v1.0, 224, raw pool5, no flip)
CRAZY = "market-matconvnet"  # test_gallery_query_crazy.m (256, per-position L2, flip)


def _rows() -> list[Published]:
    rows: list[Published] = []

    def add(key, value, metric, dataset, protocol, arch, model, recipe, source, note=""):
        rows.append(Published(key, value, metric, dataset, protocol, arch, model, recipe,
                              source, note))

    # Table 2 (Market-1501 single query; columns mAP then rank-1). The ResNet-50 rows were
    # made with the v1.0 test code (test_gallery_res.m / test_query_res.m).
    t2 = {"caffenet": ((22.47, 41.24), (26.79, 50.89), (39.61, 62.14)),
          "vgg16": ((24.29, 42.99), (38.27, 65.02), (47.45, 70.16)),
          "resnet50": ((44.94, 64.58), (51.48, 73.69), (59.87, 79.51))}
    for arch, triples in t2.items():
        for model, (m, r1) in zip(("V", "I", "I+V"), triples, strict=True):
            for metric, v in (("mAP", m), ("rank1", r1)):
                add(f"paper/t2/{arch}/{model}/{metric}", v, metric, "market1501",
                    "single-query", arch, model, V1 if arch == "resnet50" else "",
                    "paper Table 2")
    # Table 3 multi-query rows (pooling not stated; no test script released for them).
    t3 = {"caffenet": ((59.80, 36.50), (72.21, 49.62)), "vgg16": ((74.14, 52.25), (77.94, 57.66)),
          "resnet50": ((81.47, 63.95), (85.84, 70.33))}
    for arch, ((br1, bm), (r1, m)) in t3.items():
        for model, vr1, vm in (("I", br1, bm), ("I+V", r1, m)):
            for metric, v in (("rank1", vr1), ("mAP", vm)):
                add(f"paper/t3/{arch}/{model}/mq/{metric}", v, metric, "market1501",
                    "multi-query", arch, model, "", "paper Table 3 (MQ)",
                    "the paper does not say max or avg pooling: compared with both")
    # Tables 4 and 5: CUHK03 detected, old protocol (the paper: mean of 20 splits).
    for table, protocol, data in (
        ("t4", "single-shot", {"caffenet": ((35.8, 65.3, 77.96, 42.6), (59.8, 88.3, 94.2, 65.8)),
                               "vgg16": ((49.1, 78.4, 87.2, 55.7), (71.8, 93.0, 97.1, 76.5)),
                               "resnet50": ((71.5, 91.5, 95.9, 75.8), (83.4, 97.1, 98.7, 86.4))}),
        ("t5", "multi-shot", {"caffenet": ((43.3, 63.5, 76.8, 37.2), (67.2, 86.2, 92.3, 61.5)),
                              "vgg16": ((58.8, 80.2, 87.3, 51.0), (78.8, 91.8, 95.4, 73.9)),
                              "resnet50": ((77.1, 89.6, 93.9, 73.1), (88.3, 95.7, 97.8, 85.0))}),
    ):
        for arch, (base, ours) in data.items():
            for model, vals in (("I", base), ("I+V", ours)):
                for metric, v in zip(("rank1", "rank5", "rank10", "mAP"), vals, strict=True):
                    add(f"paper/{table}/{arch}/{model}/{metric}", v, metric, "cuhk03", protocol,
                        arch, model, "cuhk03-matconvnet" if arch == "resnet50" else "",
                        f"paper Table {table[1]} (CUHK03 detected, {protocol})",
                        "the paper averages 20 random splits (section 4.1)")
    # Table 6: Market-1501 + 500k distractors (ResNet-50, single query).
    for size, (br1, bm, r1, m) in {19732: (73.69, 51.48, 79.51, 59.87),
                                   119732: (72.15, 48.72, 73.78, 52.28),
                                   219732: (71.55, 47.57, 71.50, 49.11),
                                   519732: (70.67, 46.05, 68.26, 45.24)}.items():
        dataset = "market1501" if size == 19732 else "market1501+500k"
        protocol = "single-query" if size == 19732 else f"gallery={size}"
        note = "" if size == 19732 else ("the paper does not say how the 100k/200k subsets were "
                                         "drawn; ours is a seeded rule")
        for model, vr1, vm in (("I", br1, bm), ("I+V", r1, m)):
            for metric, v in (("rank1", vr1), ("mAP", vm)):
                add(f"paper/t6/{size}/{model}/{metric}", v, metric, dataset, protocol,
                    "resnet50", model, V1, "paper Table 6", note)
    # Table 7: Oxford5k mAP.
    for arch, (base, ours) in {"caffenet": (60.2, 66.2), "vgg16": (69.8, 76.4)}.items():
        add(f"paper/t7/{arch}/I/mAP", base, "mAP", "oxford5k", "full-image MAC", arch, "I",
            "mac", "paper Table 7")
        add(f"paper/t7/{arch}/I+V/mAP", ours, "mAP", "oxford5k", "full-image MAC", arch, "I+V",
            "mac", "paper Table 7")
    # Section 4.2: contrastive verification loss instead of the 2-way softmax.
    add("paper/contrastive/rank1", 75.12, "rank1", "market1501", "single-query", "resnet50",
        "contrastive", V1, "paper §4.2")
    add("paper/contrastive/mAP", 53.32, "mAP", "market1501", "single-query", "resnet50",
        "contrastive", V1, "paper §4.2")
    # Section 4.2 / Fig. 6: the camera-pair summary, mean of the 30 cross-camera cells.
    add("paper/fig6/cross-camera/mAP", 48.42, "mAP", "market1501", "camera pairs", "resnet50",
        "I+V", "", "paper §4.2 (Fig. 6)", "ResNet-50 assumed; the test script is not stated")
    add("paper/fig6/cross-camera/rank1", 54.42, "rank1", "market1501", "camera pairs",
        "resnet50", "I+V", "", "paper §4.2 (Fig. 6)",
        "ResNet-50 assumed; the test script is not stated")
    # The authors' README (layumi/2016_person_re-ID), test_gallery_query_crazy.m recipe and
    # zzd_evaluation_res_fast.m's printed lines (their multi-query r1 are swapped).
    for key, r1, m, proto in (("readme/sq", 80.82, 62.30, "single-query"),
                              ("readme/mq-avg", 86.67, 70.16, "multi-query avg (as printed)"),
                              ("readme/mq-max", 86.76, 70.68, "multi-query max (as printed)"),
                              ("readme/mq-max-rerank", 86.67, 72.55,
                               "multi-query max + 1-NN QE")):
        for metric, v in (("rank1", r1), ("mAP", m)):
            add(f"{key}/{metric}", v, metric, "market1501", proto, "resnet50", "I+V", CRAZY,
                "layumi/2016_person_re-ID README")
    # DukeMTMC-reID leaderboard entry "Verif + Identif".
    add("duke/rank1", 68.9, "rank1", "dukemtmc", "single-query", "resnet50", "I+V", "",
        "layumi/DukeMTMC-reID_evaluation State-of-the-art README")
    add("duke/mAP", 49.3, "mAP", "dukemtmc", "single-query", "resnet50", "I+V", "",
        "layumi/DukeMTMC-reID_evaluation State-of-the-art README")
    # D-X-Y's Caffe re-implementation (caffe-reid README), fractions printed there x100;
    # extract_prediction.sh (no --center_only) + evaluation.m (whole gallery).
    for arch, m, r1, proto, label in (
            ("caffenet", 40.2689, 63.9846, "dxy euclidean", "[Euclidean]"),
            ("vgg16", 44.6430, 65.4394, "dxy cosine", "[Failed]"),
            ("resnet50", 59.3053, 80.1960, "dxy cosine", "[Cos + Eucl]")):
        for metric, v in (("mAP", m), ("rank1", r1)):
            add(f"dxy/{arch}/{metric}", v, metric, "market1501", proto, arch, "I+V",
                "caffe-dxy-oversample", "D-X-Y/caffe-reid README", f"labelled {label} there")
    return rows


PUBLISHED: tuple[Published, ...] = tuple(_rows())


def targets(dataset: str, arch: str | None = None, model: str = "I+V",
            protocol: str | None = None, source_prefix: str | None = None) -> list[Published]:
    """Published figures matching the filters (``source_prefix`` filters on ``key``)."""
    return select(dataset, arch, model, None if protocol is None else [protocol],
                  source_prefix)


def select(dataset: str, arch: str | None = None, model: str | None = "I+V",
           protocols: Iterable[str] | None = None, source_prefix: str | None = None,
           recipe: str | None = None) -> list[Published]:
    """Figures of ``dataset`` for the given architecture, model variant, figure protocols,
    key prefix and recipe (None = any); registry order."""
    protos = None if protocols is None else set(protocols)
    out = []
    for p in PUBLISHED:
        if p.dataset != dataset or (model is not None and p.model != model):
            continue
        if arch is not None and p.arch != arch:
            continue
        if protos is not None and p.protocol not in protos:
            continue
        if source_prefix is not None and not p.key.startswith(source_prefix):
            continue
        if recipe is not None and p.recipe not in ("", recipe):
            continue
        out.append(p)
    return out


def measured_by(protocol: str) -> tuple[str, ...]:
    """The protocols ``validate`` runs that measure a figure of ``protocol``."""
    return PROTOCOLS.get(protocol, (protocol,))


# --------------------------------------------------------------------------------------------
# The published test sets, by their counts
# --------------------------------------------------------------------------------------------

#: Counts of each published test set (SOURCES.md §5; DukeMTMC-reID: 702 test identities in
#: the query, 702 + 408 distractor identities in the gallery).
PUBLISHED_SPLITS: dict[str, dict[str, int]] = {
    "market1501": {"gallery images": 19_732, "query images": 3_368,
                   "query identities": 750, "gallery identities": 750},
    "dukemtmc": {"gallery images": 17_661, "query images": 2_228,
                 "query identities": 702, "gallery identities": 1_110},
    "cuhk03": {"identities": 1_467, "test identities": 100, "splits": 20},
    "oxford5k": {"database images": 5_062, "queries": 55},
}
#: Market-1501+500k: the Market-1501 test set plus one of these distractor counts (Table 6).
DISTRACTOR_COUNTS = (100_000, 200_000, 500_000)


def split_mismatch(dataset: str, counts: Mapping[str, int], every: bool = False
                   ) -> str | None:
    """None when ``counts`` are those of the published test set of ``dataset``, else why not,
    e.g. ``"not the published test set (39 gallery images, expected 19,732)"``: the first
    count that differs, or all of them with ``every=True``.

    ``market1501+500k`` takes the Market-1501 counts of the original gallery part plus
    ``"distractors"``. A count missing from ``counts`` is a mismatch.
    """
    if dataset == "market1501+500k":
        wrong = _wrong(PUBLISHED_SPLITS["market1501"], counts)
        n = counts.get("distractors")
        if n not in DISTRACTOR_COUNTS:
            allowed = " or ".join(f"{d:,}" for d in DISTRACTOR_COUNTS)
            wrong.append(f"{_fmt(n)} distractors, expected {allowed}")
    elif dataset in PUBLISHED_SPLITS:
        wrong = _wrong(PUBLISHED_SPLITS[dataset], counts)
    else:
        return f"no published test set is registered for {dataset!r}"
    if not wrong:
        return None
    return f"not the published test set ({'; '.join(wrong if every else wrong[:1])})"


def _wrong(expected: Mapping[str, int], counts: Mapping[str, int]) -> list[str]:
    return [f"{_fmt(counts.get(k))} {k}, expected {v:,}" for k, v in expected.items()
            if counts.get(k) != v]


def _fmt(n: int | None) -> str:
    return "no" if n is None else f"{n:,}"
