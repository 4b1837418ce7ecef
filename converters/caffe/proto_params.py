"""The ``*_param`` messages of the Caffe layer types that :mod:`.proto` declares beyond the
re-ID models' subset: BVLC's remaining test-time layers and the forks' layers that public nets
use. :mod:`.proto` adds :data:`LAYER_FIELDS` to ``LayerParameter`` and :data:`MESSAGES` to the
schema. Field names, numbers and defaults follow BVLC ``caffe.proto`` and each fork's own
(named next to its message)."""

from __future__ import annotations

from typing import Any

#: A field: (label, type, name, number, default or None, packed), as :mod:`.proto` reads it.
Field = tuple[str, str, str, int, Any, bool]
#: An enum: (name, [(value name, number), ...]).
Enum = tuple[str, list[tuple[str, int]]]


def opt(type_: str, name: str, number: int, default: Any = None) -> Field:
    return ("optional", type_, name, number, default, False)


def rep(type_: str, name: str, number: int) -> Field:
    return ("repeated", type_, name, number, None, False)


ENGINE: Enum = ("Engine", [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)])

#: ``LayerParameter`` fields.
LAYER_FIELDS: list[Field] = [
    opt("ELUParameter", "elu_param", 140),
    opt("PReLUParameter", "prelu_param", 131),
    opt("ThresholdParameter", "threshold_param", 128),
    opt("ArgMaxParameter", "argmax_param", 103),
    opt("CropParameter", "crop_param", 144),
    opt("EmbedParameter", "embed_param", 137),
    opt("ExpParameter", "exp_param", 111),
    opt("LogParameter", "log_param", 134),
    opt("MVNParameter", "mvn_param", 120),
    opt("ReductionParameter", "reduction_param", 136),
    opt("TileParameter", "tile_param", 138),
    # Forks' layers (their numbers where BVLC leaves them free): SSD (weiliu89/caffe
    # ssd) Normalize/Permute, ShuffleNet (farmingyard) ShuffleChannel, the YOLO forks'
    # Upsample (SegNet's 137 is BVLC's embed_param). Two forks used numbers BVLC took
    # later, so they get Netron's offsets: the TSN/PSPNet BN (137 in yjxiong/caffe,
    # 152 in PSPNet) and DeepLab/PSPNet Interp (143 = BVLC's input_param). Layer
    # settings are read from the prototxt, where only the names count.
    opt("NormalizeParameter", "norm_param", 206),
    opt("PermuteParameter", "permute_param", 202),
    opt("ShuffleChannelParameter", "shuffle_channel_param", 164),
    opt("UpsampleParameter", "upsample_param", 149),
    opt("BNParameter", "bn_param", 1137),
    opt("InterpParameter", "interp_param", 2143),
]

#: (message name, fields, nested enums).
MESSAGES: list[tuple[str, list[Field], list[Enum]]] = [
    ("ELUParameter", [opt("float", "alpha", 1, 1.0)], []),
    (
        "PReLUParameter",
        [opt("FillerParameter", "filler", 1), opt("bool", "channel_shared", 2, False)],
        [],
    ),
    ("ThresholdParameter", [opt("float", "threshold", 1, 0.0)], []),
    (
        "ArgMaxParameter",
        [opt("bool", "out_max_val", 1, False), opt("uint32", "top_k", 2, 1),
         opt("int32", "axis", 3)],
        [],
    ),
    ("CropParameter", [opt("int32", "axis", 1, 2), rep("uint32", "offset", 2)], []),
    (
        "EmbedParameter",
        [
            opt("uint32", "num_output", 1),
            opt("uint32", "input_dim", 2),
            opt("bool", "bias_term", 3, True),
            opt("FillerParameter", "weight_filler", 4),
            opt("FillerParameter", "bias_filler", 5),
        ],
        [],
    ),
    (
        "ExpParameter",
        [opt("float", "base", 1, -1.0), opt("float", "scale", 2, 1.0),
         opt("float", "shift", 3, 0.0)],
        [],
    ),
    (
        "LogParameter",
        [opt("float", "base", 1, -1.0), opt("float", "scale", 2, 1.0),
         opt("float", "shift", 3, 0.0)],
        [],
    ),
    (
        "MVNParameter",
        [opt("bool", "normalize_variance", 1, True), opt("bool", "across_channels", 2, False),
         opt("float", "eps", 3, 1e-9)],
        [],
    ),
    (
        "ReductionParameter",
        [opt("ReductionOp", "operation", 1, "SUM"), opt("int32", "axis", 2, 0),
         opt("float", "coeff", 3, 1.0)],
        [("ReductionOp", [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)])],
    ),
    ("TileParameter", [opt("int32", "axis", 1, 1), opt("int32", "tiles", 2)], []),
    (
        "NormalizeParameter",  # weiliu89/caffe ssd
        [
            opt("bool", "across_spatial", 1, True),
            opt("FillerParameter", "scale_filler", 2),
            opt("bool", "channel_shared", 3, True),
            opt("float", "eps", 4, 1e-10),
        ],
        [],
    ),
    ("PermuteParameter", [rep("uint32", "order", 1)], []),  # weiliu89/caffe ssd
    ("ShuffleChannelParameter", [opt("uint32", "group", 1, 1)], []),  # farmingyard/ShuffleNet
    (
        "UpsampleParameter",  # alexgkendall/caffe-segnet (the YOLO forks: scale only)
        [
            opt("uint32", "scale", 1, 2),
            opt("uint32", "scale_h", 2),
            opt("uint32", "scale_w", 3),
            opt("bool", "pad_out_h", 4, False),
            opt("bool", "pad_out_w", 5, False),
            opt("uint32", "upsample_h", 6),
            opt("uint32", "upsample_w", 7),
        ],
        [],
    ),
    (
        "BNParameter",  # yjxiong/caffe (TSN), hszhao/PSPNet; alexgkendall/caffe-segnet
        [
            opt("FillerParameter", "slope_filler", 1),
            opt("FillerParameter", "bias_filler", 2),
            opt("float", "momentum", 3, 0.9),
            opt("float", "eps", 4, 1e-5),
            opt("bool", "frozen", 5, False),
            opt("Engine", "engine", 6, "DEFAULT"),
            # alexgkendall/caffe-segnet's (and ENet's) BN numbers these 1, 2 and 3, which
            # the fork above uses for other fields: names decide in a prototxt
            opt("FillerParameter", "scale_filler", 1001),
            opt("FillerParameter", "shift_filler", 1002),
            opt("BNMode", "bn_mode", 1003, "LEARN"),
        ],
        [ENGINE, ("BNMode", [("LEARN", 0), ("INFERENCE", 1)])],
    ),
    (
        "InterpParameter",  # hszhao/PSPNet, DeepLab v2
        [
            opt("int32", "height", 1, 0),
            opt("int32", "width", 2, 0),
            opt("int32", "zoom_factor", 3, 1),
            opt("int32", "shrink_factor", 4, 1),
            opt("int32", "pad_beg", 5, 0),
            opt("int32", "pad_end", 6, 0),
        ],
        [],
    ),
]
