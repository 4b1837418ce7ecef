"""The Caffe protobuf schema (``package caffe``), built in Python at import time.

Caffe models are protobuf ``NetParameter`` messages (binary ``.caffemodel``, text
``.prototxt``). Rather than shipping generated ``caffe_pb2`` code or running protoc at
install time, the subset of ``caffe.proto`` the re-ID models need is declared here as a
``FileDescriptorProto``, added to a private ``DescriptorPool`` and turned into message
classes by ``message_factory.GetMessageClass``. The protobuf runtime does all the wire
and text parsing.

Field numbers, types and defaults follow BVLC ``src/caffe/proto/caffe.proto`` (master,
which adds ``PoolingParameter.round_mode = 13``), plus ``ReidDataParameter`` from
D-X-Y/caffe-reid (``LayerParameter.reid_data_param = 200``). Fields not declared here
are not lost: binary parsing keeps them as unknown fields, and text parsing reports them
(see ``porting.converters.caffe.reader``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from . import proto_params

__all__ = [
    "POOL",
    "FILE_NAME",
    "message_class",
    "BlobShape",
    "BlobProto",
    "BlobProtoVector",
    "NetParameter",
    "NetState",
    "NetStateRule",
    "ParamSpec",
    "LayerParameter",
    "V1LayerParameter",
    "TransformationParameter",
    "ReidDataParameter",
]

FILE_NAME = "porting/caffe/caffe.proto"
_PACKAGE = "caffe"

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64,
    "int32": _FDP.TYPE_INT32,
    "uint32": _FDP.TYPE_UINT32,
    "bool": _FDP.TYPE_BOOL,
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
}

# A field: (label, type, name, number, default or None, packed).
_Field = tuple[str, str, str, int, Any, bool]
# An enum: (name, [(value name, number), ...]).
_Enum = tuple[str, Sequence[tuple[str, int]]]


def _opt(type_: str, name: str, number: int, default: Any = None) -> _Field:
    return ("optional", type_, name, number, default, False)


def _rep(type_: str, name: str, number: int, packed: bool = False) -> _Field:
    return ("repeated", type_, name, number, None, packed)


_ENGINE: _Enum = ("Engine", [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)])

# Top-level enums.
_TOP_ENUMS: list[_Enum] = [("Phase", [("TRAIN", 0), ("TEST", 1)])]

# (message name, fields, nested enums). Types that are not scalars name another message
# or enum: a bare name is looked up first among the message's own nested enums, then at
# package level.
_MESSAGES: list[tuple[str, list[_Field], list[_Enum]]] = [
    ("BlobShape", [_rep("int64", "dim", 1, packed=True)], []),
    (
        "BlobProto",
        [
            _opt("BlobShape", "shape", 7),
            _rep("float", "data", 5, packed=True),
            _rep("float", "diff", 6, packed=True),
            _rep("double", "double_data", 8, packed=True),
            _rep("double", "double_diff", 9, packed=True),
            # Deprecated 4-D dimensions, still written by pre-2015 Caffe.
            _opt("int32", "num", 1, 0),
            _opt("int32", "channels", 2, 0),
            _opt("int32", "height", 3, 0),
            _opt("int32", "width", 4, 0),
        ],
        [],
    ),
    ("BlobProtoVector", [_rep("BlobProto", "blobs", 1)], []),
    (
        "FillerParameter",
        [
            _opt("string", "type", 1, "constant"),
            _opt("float", "value", 2, 0.0),
            _opt("float", "min", 3, 0.0),
            _opt("float", "max", 4, 1.0),
            _opt("float", "mean", 5, 0.0),
            _opt("float", "std", 6, 1.0),
            _opt("int32", "sparse", 7, -1),
            _opt("VarianceNorm", "variance_norm", 8, "FAN_IN"),
        ],
        [("VarianceNorm", [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)])],
    ),
    (
        "NetParameter",
        [
            _opt("string", "name", 1),
            _rep("string", "input", 3),
            _rep("BlobShape", "input_shape", 8),
            _rep("int32", "input_dim", 4),
            _opt("bool", "force_backward", 5, False),
            _opt("NetState", "state", 6),
            _opt("bool", "debug_info", 7, False),
            _rep("LayerParameter", "layer", 100),
            _rep("V1LayerParameter", "layers", 2),
            # yjxiong/caffe and Cysu/caffe (TSN, JSTL nets): the cuDNN workspace size per
            # convolution; it changes no number.
            _opt("int32", "richness", 9, 300),
        ],
        [],
    ),
    (
        "NetState",
        [
            _opt("Phase", "phase", 1, "TEST"),
            _opt("int32", "level", 2, 0),
            _rep("string", "stage", 3),
        ],
        [],
    ),
    (
        "NetStateRule",
        [
            _opt("Phase", "phase", 1),
            _opt("int32", "min_level", 2),
            _opt("int32", "max_level", 3),
            _rep("string", "stage", 4),
            _rep("string", "not_stage", 5),
        ],
        [],
    ),
    (
        "ParamSpec",
        [
            _opt("string", "name", 1),
            _opt("DimCheckMode", "share_mode", 2),
            _opt("float", "lr_mult", 3, 1.0),
            _opt("float", "decay_mult", 4, 1.0),
        ],
        [("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)])],
    ),
    (
        "LayerParameter",
        [
            _opt("string", "name", 1),
            _opt("string", "type", 2),
            _rep("string", "bottom", 3),
            _rep("string", "top", 4),
            _opt("Phase", "phase", 10),
            _rep("float", "loss_weight", 5),
            _rep("ParamSpec", "param", 6),
            _rep("BlobProto", "blobs", 7),
            _rep("bool", "propagate_down", 11),
            _rep("NetStateRule", "include", 8),
            _rep("NetStateRule", "exclude", 9),
            _opt("TransformationParameter", "transform_param", 100),
            _opt("LossParameter", "loss_param", 101),
            _opt("AccuracyParameter", "accuracy_param", 102),
            _opt("BatchNormParameter", "batch_norm_param", 139),
            _opt("BiasParameter", "bias_param", 141),
            _opt("ConcatParameter", "concat_param", 104),
            _opt("ContrastiveLossParameter", "contrastive_loss_param", 105),
            _opt("ConvolutionParameter", "convolution_param", 106),
            _opt("DataParameter", "data_param", 107),
            _opt("DropoutParameter", "dropout_param", 108),
            _opt("EltwiseParameter", "eltwise_param", 110),
            _opt("FlattenParameter", "flatten_param", 135),
            _opt("HDF5DataParameter", "hdf5_data_param", 112),
            _opt("ImageDataParameter", "image_data_param", 115),
            _opt("InnerProductParameter", "inner_product_param", 117),
            _opt("InputParameter", "input_param", 143),
            _opt("LRNParameter", "lrn_param", 118),
            _opt("PoolingParameter", "pooling_param", 121),
            _opt("PowerParameter", "power_param", 122),
            _opt("PythonParameter", "python_param", 130),
            _opt("ReLUParameter", "relu_param", 123),
            _opt("ReshapeParameter", "reshape_param", 133),
            _opt("ScaleParameter", "scale_param", 142),
            _opt("SigmoidParameter", "sigmoid_param", 124),
            _opt("SoftmaxParameter", "softmax_param", 125),
            _opt("SliceParameter", "slice_param", 126),
            _opt("TanHParameter", "tanh_param", 127),
            *proto_params.LAYER_FIELDS,  # the other layer types' *_param fields
            # D-X-Y/caffe-reid. SSD forks use 200 for annotated_data_param; a caffemodel
            # from such a fork would misparse here only in a data layer's settings.
            _opt("ReidDataParameter", "reid_data_param", 200),
        ],
        [],
    ),
    (
        "TransformationParameter",
        [
            _opt("float", "scale", 1, 1.0),
            _opt("bool", "mirror", 2, False),
            _opt("uint32", "crop_size", 3, 0),
            _opt("string", "mean_file", 4),
            _rep("float", "mean_value", 5),
            _opt("bool", "force_color", 6, False),
            _opt("bool", "force_gray", 7, False),
        ],
        [],
    ),
    (
        "LossParameter",
        [
            _opt("int32", "ignore_label", 1),
            _opt("NormalizationMode", "normalization", 3, "VALID"),
            _opt("bool", "normalize", 2),
        ],
        [
            (
                "NormalizationMode",
                [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)],
            )
        ],
    ),
    (
        "AccuracyParameter",
        [
            _opt("uint32", "top_k", 1, 1),
            _opt("int32", "axis", 2, 1),
            _opt("int32", "ignore_label", 3),
        ],
        [],
    ),
    (
        "BatchNormParameter",
        [
            _opt("bool", "use_global_stats", 1),
            _opt("float", "moving_average_fraction", 2, 0.999),
            _opt("float", "eps", 3, 1e-5),
        ],
        [],
    ),
    (
        "BiasParameter",
        [
            _opt("int32", "axis", 1, 1),
            _opt("int32", "num_axes", 2, 1),
            _opt("FillerParameter", "filler", 3),
        ],
        [],
    ),
    (
        "ConcatParameter",
        [_opt("int32", "axis", 2, 1), _opt("uint32", "concat_dim", 1, 1)],
        [],
    ),
    (
        "ContrastiveLossParameter",
        [_opt("float", "margin", 1, 1.0), _opt("bool", "legacy_version", 2, False)],
        [],
    ),
    (
        "ConvolutionParameter",
        [
            _opt("uint32", "num_output", 1),
            _opt("bool", "bias_term", 2, True),
            _rep("uint32", "pad", 3),
            _rep("uint32", "kernel_size", 4),
            _rep("uint32", "stride", 6),
            _rep("uint32", "dilation", 18),
            _opt("uint32", "pad_h", 9, 0),
            _opt("uint32", "pad_w", 10, 0),
            _opt("uint32", "kernel_h", 11),
            _opt("uint32", "kernel_w", 12),
            _opt("uint32", "stride_h", 13),
            _opt("uint32", "stride_w", 14),
            _opt("uint32", "group", 5, 1),
            _opt("FillerParameter", "weight_filler", 7),
            _opt("FillerParameter", "bias_filler", 8),
            _opt("Engine", "engine", 15, "DEFAULT"),
            _opt("int32", "axis", 16, 1),
            _opt("bool", "force_nd_im2col", 17, False),
        ],
        [_ENGINE],
    ),
    (
        "DataParameter",
        [
            _opt("string", "source", 1),
            _opt("uint32", "batch_size", 4),
            _opt("uint32", "rand_skip", 7, 0),
            _opt("DB", "backend", 8, "LEVELDB"),
            _opt("float", "scale", 2, 1.0),
            _opt("string", "mean_file", 3),
            _opt("uint32", "crop_size", 5, 0),
            _opt("bool", "mirror", 6, False),
            _opt("bool", "force_encoded_color", 9, False),
            _opt("uint32", "prefetch", 10, 4),
        ],
        [("DB", [("LEVELDB", 0), ("LMDB", 1)])],
    ),
    ("DropoutParameter", [_opt("float", "dropout_ratio", 1, 0.5)], []),
    (
        "EltwiseParameter",
        [
            _opt("EltwiseOp", "operation", 1, "SUM"),
            _rep("float", "coeff", 2),
            _opt("bool", "stable_prod_grad", 3, True),
        ],
        [("EltwiseOp", [("PROD", 0), ("SUM", 1), ("MAX", 2)])],
    ),
    (
        "FlattenParameter",
        [_opt("int32", "axis", 1, 1), _opt("int32", "end_axis", 2, -1)],
        [],
    ),
    (
        "HDF5DataParameter",
        [
            _opt("string", "source", 1),
            _opt("uint32", "batch_size", 2),
            _opt("bool", "shuffle", 3, False),
        ],
        [],
    ),
    (
        "ImageDataParameter",
        [
            _opt("string", "source", 1),
            _opt("uint32", "batch_size", 4, 1),
            _opt("uint32", "rand_skip", 7, 0),
            _opt("bool", "shuffle", 8, False),
            _opt("uint32", "new_height", 9, 0),
            _opt("uint32", "new_width", 10, 0),
            _opt("bool", "is_color", 11, True),
            _opt("float", "scale", 2, 1.0),
            _opt("string", "mean_file", 3),
            _opt("uint32", "crop_size", 5, 0),
            _opt("bool", "mirror", 6, False),
            _opt("string", "root_folder", 12, ""),
        ],
        [],
    ),
    (
        "InnerProductParameter",
        [
            _opt("uint32", "num_output", 1),
            _opt("bool", "bias_term", 2, True),
            _opt("FillerParameter", "weight_filler", 3),
            _opt("FillerParameter", "bias_filler", 4),
            _opt("int32", "axis", 5, 1),
            _opt("bool", "transpose", 6, False),
        ],
        [],
    ),
    ("InputParameter", [_rep("BlobShape", "shape", 1)], []),
    (
        "LRNParameter",
        [
            _opt("uint32", "local_size", 1, 5),
            _opt("float", "alpha", 2, 1.0),
            _opt("float", "beta", 3, 0.75),
            _opt("NormRegion", "norm_region", 4, "ACROSS_CHANNELS"),
            _opt("float", "k", 5, 1.0),
            _opt("Engine", "engine", 6, "DEFAULT"),
        ],
        [("NormRegion", [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)]), _ENGINE],
    ),
    (
        "PoolingParameter",
        [
            _opt("PoolMethod", "pool", 1, "MAX"),
            # Unlike ConvolutionParameter, pad/kernel_size/stride are NOT repeated here.
            _opt("uint32", "pad", 4, 0),
            _opt("uint32", "pad_h", 9, 0),
            _opt("uint32", "pad_w", 10, 0),
            _opt("uint32", "kernel_size", 2),
            _opt("uint32", "kernel_h", 5),
            _opt("uint32", "kernel_w", 6),
            _opt("uint32", "stride", 3, 1),
            _opt("uint32", "stride_h", 7),
            _opt("uint32", "stride_w", 8),
            _opt("Engine", "engine", 11, "DEFAULT"),
            _opt("bool", "global_pooling", 12, False),
            _opt("RoundMode", "round_mode", 13, "CEIL"),
            # BVLC PR #3057's forks (OpenCV's caffe.proto, caffe-ssd derivatives, the Torch ->
            # Caffe converters' DenseNet/ResNeXt nets): false = FLOOR. They number it 13,
            # where BVLC later put round_mode; it is declared at an unused number so that
            # prototxts parse. Layer parameters are read from the prototxt, never from a
            # caffemodel, so the wire number does not matter.
            _opt("bool", "ceil_mode", 1013, True),
        ],
        [
            ("PoolMethod", [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)]),
            _ENGINE,
            ("RoundMode", [("CEIL", 0), ("FLOOR", 1)]),
        ],
    ),
    (
        "PowerParameter",
        [
            _opt("float", "power", 1, 1.0),
            _opt("float", "scale", 2, 1.0),
            _opt("float", "shift", 3, 0.0),
        ],
        [],
    ),
    (
        "PythonParameter",
        [
            _opt("string", "module", 1),
            _opt("string", "layer", 2),
            _opt("string", "param_str", 3, ""),
            _opt("bool", "share_in_parallel", 4, False),
        ],
        [],
    ),
    (
        "ReLUParameter",
        [_opt("float", "negative_slope", 1, 0.0), _opt("Engine", "engine", 2, "DEFAULT")],
        [_ENGINE],
    ),
    (
        "ReshapeParameter",
        [
            _opt("BlobShape", "shape", 1),
            _opt("int32", "axis", 2, 0),
            _opt("int32", "num_axes", 3, -1),
        ],
        [],
    ),
    (
        "ScaleParameter",
        [
            _opt("int32", "axis", 1, 1),
            _opt("int32", "num_axes", 2, 1),
            _opt("FillerParameter", "filler", 3),
            _opt("bool", "bias_term", 4, False),
            _opt("FillerParameter", "bias_filler", 5),
        ],
        [],
    ),
    ("SigmoidParameter", [_opt("Engine", "engine", 1, "DEFAULT")], [_ENGINE]),
    (
        "SoftmaxParameter",
        [_opt("Engine", "engine", 1, "DEFAULT"), _opt("int32", "axis", 2, 1)],
        [_ENGINE],
    ),
    (
        "SliceParameter",
        [
            _opt("int32", "axis", 3, 1),
            _rep("uint32", "slice_point", 2),
            _opt("uint32", "slice_dim", 1, 1),
        ],
        [],
    ),
    ("TanHParameter", [_opt("Engine", "engine", 1, "DEFAULT")], [_ENGINE]),
    (
        # D-X-Y/caffe-reid src/caffe/proto/caffe.proto (read through zhunzhong07/caffe-reid).
        "ReidDataParameter",
        [
            _opt("string", "source", 1),
            _opt("uint32", "batch_size", 4, 1),
            _opt("uint32", "new_height", 9, 0),
            _opt("uint32", "new_width", 10, 0),
            _opt("bool", "is_color", 11, True),
            _opt("uint32", "pos_fraction", 12, 1),
            _opt("uint32", "neg_fraction", 13, 1),
            _opt("float", "pos_limit", 14, 1.0),
            _opt("float", "neg_limit", 15, 4.0),
            _opt("float", "pos_factor", 16, 1.0),
            _opt("float", "neg_factor", 17, 1.01),
        ],
        [],
    ),
    (
        # Legacy (2014-2015) layer format: NetParameter.layers = 2, enum layer types.
        "V1LayerParameter",
        [
            _rep("string", "bottom", 2),
            _rep("string", "top", 3),
            _opt("string", "name", 4),
            _rep("NetStateRule", "include", 32),
            _rep("NetStateRule", "exclude", 33),
            _opt("LayerType", "type", 5),
            _rep("BlobProto", "blobs", 6),
            _rep("string", "param", 1001),
            _rep("DimCheckMode", "blob_share_mode", 1002),
            _rep("float", "blobs_lr", 7),
            _rep("float", "weight_decay", 8),
            _rep("float", "loss_weight", 35),
            _opt("AccuracyParameter", "accuracy_param", 27),
            _opt("ConcatParameter", "concat_param", 9),
            _opt("ContrastiveLossParameter", "contrastive_loss_param", 40),
            _opt("ConvolutionParameter", "convolution_param", 10),
            _opt("DataParameter", "data_param", 11),
            _opt("DropoutParameter", "dropout_param", 12),
            _opt("EltwiseParameter", "eltwise_param", 24),
            _opt("HDF5DataParameter", "hdf5_data_param", 13),
            _opt("ImageDataParameter", "image_data_param", 15),
            _opt("InnerProductParameter", "inner_product_param", 17),
            _opt("LRNParameter", "lrn_param", 18),
            _opt("PoolingParameter", "pooling_param", 19),
            _opt("PowerParameter", "power_param", 21),
            _opt("ReLUParameter", "relu_param", 30),
            _opt("SigmoidParameter", "sigmoid_param", 38),
            _opt("SoftmaxParameter", "softmax_param", 39),
            _opt("SliceParameter", "slice_param", 31),
            _opt("TanHParameter", "tanh_param", 37),
            _opt("ThresholdParameter", "threshold_param", 25),
            _opt("TransformationParameter", "transform_param", 36),
            _opt("LossParameter", "loss_param", 42),
            # Only declared so that pre-V1 ("V0") files can be recognised and refused.
            _opt("V0LayerParameter", "layer", 1),
        ],
        [
            (
                "LayerType",
                [
                    ("NONE", 0),
                    ("ABSVAL", 35),
                    ("ACCURACY", 1),
                    ("ARGMAX", 30),
                    ("BNLL", 2),
                    ("CONCAT", 3),
                    ("CONTRASTIVE_LOSS", 37),
                    ("CONVOLUTION", 4),
                    ("DATA", 5),
                    ("DECONVOLUTION", 39),
                    ("DROPOUT", 6),
                    ("DUMMY_DATA", 32),
                    ("EUCLIDEAN_LOSS", 7),
                    ("ELTWISE", 25),
                    ("EXP", 38),
                    ("FLATTEN", 8),
                    ("HDF5_DATA", 9),
                    ("HDF5_OUTPUT", 10),
                    ("HINGE_LOSS", 28),
                    ("IM2COL", 11),
                    ("IMAGE_DATA", 12),
                    ("INFOGAIN_LOSS", 13),
                    ("INNER_PRODUCT", 14),
                    ("LRN", 15),
                    ("MEMORY_DATA", 29),
                    ("MULTINOMIAL_LOGISTIC_LOSS", 16),
                    ("MVN", 34),
                    ("POOLING", 17),
                    ("POWER", 26),
                    ("RELU", 18),
                    ("SIGMOID", 19),
                    ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
                    ("SILENCE", 36),
                    ("SOFTMAX", 20),
                    ("SOFTMAX_LOSS", 21),
                    ("SPLIT", 22),
                    ("SLICE", 33),
                    ("TANH", 23),
                    ("WINDOW_DATA", 24),
                    ("THRESHOLD", 31),
                ],
            ),
            ("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)]),
        ],
    ),
    ("V0LayerParameter", [_opt("string", "name", 1), _opt("string", "type", 2)], []),
    *proto_params.MESSAGES,
]


def _default_text(value: Any) -> str:
    """Render a default the way FieldDescriptorProto.default_value spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    """Assemble the FileDescriptorProto for the tables above."""
    top_enums = {name for name, _ in _TOP_ENUMS}
    messages = {name for name, _, _ in _MESSAGES}
    proto = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=_PACKAGE, syntax="proto2")
    for enum_name, values in _TOP_ENUMS:
        enum = proto.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for msg_name, fields, enums in _MESSAGES:
        msg = proto.message_type.add(name=msg_name)
        nested = set()
        for enum_name, values in enums:
            nested.add(enum_name)
            enum = msg.enum_type.add(name=enum_name)
            for value_name, number in values:
                enum.value.add(name=value_name, number=number)
        for label, type_, name, number, default, packed in fields:
            field = msg.field.add(name=name, number=number)
            field.label = _FDP.LABEL_REPEATED if label == "repeated" else _FDP.LABEL_OPTIONAL
            if type_ in _SCALARS:
                field.type = _SCALARS[type_]
            elif type_ in nested:
                field.type = _FDP.TYPE_ENUM
                field.type_name = f".{_PACKAGE}.{msg_name}.{type_}"
            elif type_ in top_enums:
                field.type = _FDP.TYPE_ENUM
                field.type_name = f".{_PACKAGE}.{type_}"
            elif type_ in messages:
                field.type = _FDP.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{type_}"
            else:  # pragma: no cover - a typo in the tables above
                raise AssertionError(f"caffe schema: unknown type {type_!r} for {msg_name}.{name}")
            if default is not None:
                field.default_value = _default_text(default)
            if packed:
                field.options.packed = True
    return proto


POOL = descriptor_pool.DescriptorPool()
POOL.Add(_build_file())


def message_class(name: str) -> type[Message]:
    """The message class for ``caffe.<name>`` from the private pool."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


BlobShape = message_class("BlobShape")
BlobProto = message_class("BlobProto")
BlobProtoVector = message_class("BlobProtoVector")
NetParameter = message_class("NetParameter")
NetState = message_class("NetState")
NetStateRule = message_class("NetStateRule")
ParamSpec = message_class("ParamSpec")
LayerParameter = message_class("LayerParameter")
V1LayerParameter = message_class("V1LayerParameter")
TransformationParameter = message_class("TransformationParameter")
ReidDataParameter = message_class("ReidDataParameter")
