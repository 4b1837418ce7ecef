"""Every published figure of the paper and its released code, with where it comes from.

Values are percentages as printed. ``source`` cites the paper table or the README they come
from; ``recipe`` names the feature-extraction recipe of :mod:`porting.recipes` that the
figure was produced with, where that is known.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    key: str
    value: float  # percent
    metric: str  # "mAP", "rank1", "rank5", "rank10"
    dataset: str  # "market1501", "market1501+500k", "cuhk03", "dukemtmc", "oxford5k"
    protocol: str  # e.g. "single-query", "multi-query", "single-shot", "gallery=119732"
    arch: str  # "caffenet", "vgg16", "resnet50"
    model: str  # "I+V" (the paper's), "I", "V", "contrastive"
    recipe: str  # porting.recipes name, or "" when not applicable/unknown
    source: str


def _rows() -> list[Published]:
    rows: list[Published] = []

    def add(key, value, metric, dataset, protocol, arch, model, recipe, source):
        rows.append(Published(key, value, metric, dataset, protocol, arch, model, recipe,
                              source))

    # Table 2 (Market-1501 single query; columns mAP then rank-1).
    t2 = {"caffenet": ((22.47, 41.24), (26.79, 50.89), (39.61, 62.14)),
          "vgg16": ((24.29, 42.99), (38.27, 65.02), (47.45, 70.16)),
          "resnet50": ((44.94, 64.58), (51.48, 73.69), (59.87, 79.51))}
    for arch, triples in t2.items():
        for model, (m, r1) in zip(("V", "I", "I+V"), triples, strict=True):
            for metric, v in (("mAP", m), ("rank1", r1)):
                add(f"paper/t2/{arch}/{model}/{metric}", v, metric, "market1501",
                    "single-query", arch, model, "market-matconvnet" if arch == "resnet50"
                    else "", "paper Table 2")
    # Table 3 multi-query rows.
    t3 = {"caffenet": ((59.80, 36.50), (72.21, 49.62)), "vgg16": ((74.14, 52.25), (77.94, 57.66)),
          "resnet50": ((81.47, 63.95), (85.84, 70.33))}
    for arch, ((br1, bm), (r1, m)) in t3.items():
        for model, vr1, vm in (("I", br1, bm), ("I+V", r1, m)):
            add(f"paper/t3/{arch}/{model}/mq/rank1", vr1, "rank1", "market1501", "multi-query",
                arch, model, "", "paper Table 3 (MQ)")
            add(f"paper/t3/{arch}/{model}/mq/mAP", vm, "mAP", "market1501", "multi-query",
                arch, model, "", "paper Table 3 (MQ)")
    # Tables 4 and 5: CUHK03 detected, old protocol.
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
                        f"paper Table {table[1]} (CUHK03 detected, {protocol})")
    # Table 6: Market-1501 + 500k distractors (ResNet-50, single query).
    for size, (br1, bm, r1, m) in {19732: (73.69, 51.48, 79.51, 59.87),
                                   119732: (72.15, 48.72, 73.78, 52.28),
                                   219732: (71.55, 47.57, 71.50, 49.11),
                                   519732: (70.67, 46.05, 68.26, 45.24)}.items():
        for model, vr1, vm in (("I", br1, bm), ("I+V", r1, m)):
            add(f"paper/t6/{size}/{model}/rank1", vr1, "rank1", "market1501+500k",
                f"gallery={size}", "resnet50", model, "market-matconvnet", "paper Table 6")
            add(f"paper/t6/{size}/{model}/mAP", vm, "mAP", "market1501+500k",
                f"gallery={size}", "resnet50", model, "market-matconvnet", "paper Table 6")
    # Table 7: Oxford5k mAP.
    for arch, (base, ours) in {"caffenet": (60.2, 66.2), "vgg16": (69.8, 76.4)}.items():
        add(f"paper/t7/{arch}/I/mAP", base, "mAP", "oxford5k", "full-image MAC", arch, "I", "",
            "paper Table 7")
        add(f"paper/t7/{arch}/I+V/mAP", ours, "mAP", "oxford5k", "full-image MAC", arch, "I+V",
            "", "paper Table 7")
    # Section 4.2: contrastive verification loss instead of the 2-way softmax.
    add("paper/contrastive/rank1", 75.12, "rank1", "market1501", "single-query", "resnet50",
        "contrastive", "", "paper §4.2")
    add("paper/contrastive/mAP", 53.32, "mAP", "market1501", "single-query", "resnet50",
        "contrastive", "", "paper §4.2")
    # The authors' README (layumi/2016_person_re-ID), test_gallery_query_crazy.m recipe.
    for key, r1, m, proto in (("readme/sq", 80.82, 62.30, "single-query"),
                              ("readme/mq-avg", 86.67, 70.16, "multi-query avg"),
                              ("readme/mq-max", 86.76, 70.68, "multi-query max"),
                              ("readme/mq-max-rerank", 86.67, 72.55, "multi-query max + 1-NN QE")):
        add(f"{key}/rank1", r1, "rank1", "market1501", proto, "resnet50", "I+V",
            "market-matconvnet", "layumi/2016_person_re-ID README")
        add(f"{key}/mAP", m, "mAP", "market1501", proto, "resnet50", "I+V",
            "market-matconvnet", "layumi/2016_person_re-ID README")
    # DukeMTMC-reID leaderboard entry "Verif + Identif".
    add("duke/rank1", 68.9, "rank1", "dukemtmc", "single-query", "resnet50", "I+V", "",
        "layumi/DukeMTMC-reID_evaluation State-of-the-art README")
    add("duke/mAP", 49.3, "mAP", "dukemtmc", "single-query", "resnet50", "I+V", "",
        "layumi/DukeMTMC-reID_evaluation State-of-the-art README")
    # D-X-Y's Caffe re-implementation (caffe-reid README), fractions printed there x100.
    for arch, m, r1 in (("caffenet", 40.2689, 63.9846), ("vgg16", 44.6430, 65.4394),
                        ("resnet50", 59.3053, 80.1960)):
        add(f"dxy/{arch}/mAP", m, "mAP", "market1501", "single-query", arch, "I+V",
            "caffe-dxy", "D-X-Y/caffe-reid README")
        add(f"dxy/{arch}/rank1", r1, "rank1", "market1501", "single-query", arch, "I+V",
            "caffe-dxy", "D-X-Y/caffe-reid README")
    return rows


PUBLISHED: tuple[Published, ...] = tuple(_rows())


def targets(dataset: str, arch: str | None = None, model: str = "I+V",
            protocol: str | None = None, source_prefix: str | None = None) -> list[Published]:
    """Published figures matching the filters (``source_prefix`` filters on ``key``)."""
    out = []
    for p in PUBLISHED:
        if p.dataset != dataset or p.model != model:
            continue
        if arch is not None and p.arch != arch:
            continue
        if protocol is not None and p.protocol != protocol:
            continue
        if source_prefix is not None and not p.key.startswith(source_prefix):
            continue
        out.append(p)
    return out
