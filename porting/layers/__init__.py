"""The source frameworks' layer semantics, one module per behaviour.

Each module holds a layer's PyTorch forward and its exact export form (``export_form``),
so :mod:`porting.export` takes the ONNX form from the layer itself:

* :mod:`~porting.layers.pooling_caffe` -- Caffe ``Pooling`` (CEIL size, clipped AVE divisor);
* :mod:`~porting.layers.pooling_matconvnet` -- ``vl_nnpool`` (floor size, ``[t b l r]`` pad);
* :mod:`~porting.layers.pooling_static` -- the fixed-geometry pooling both reduce to;
* :mod:`~porting.layers.lrn` -- Caffe ``LRN`` and ``vl_nnnormalize`` (alpha not divided by N);
* :mod:`~porting.layers.batchnorm` -- Caffe ``BatchNorm`` + ``Scale``, ``vl_nnbnorm``;
* :mod:`~porting.layers.inner_product` -- Caffe ``InnerProduct`` on the C,H,W-flattened blob;
* :mod:`~porting.layers.conv` -- MatConvNet's padded convolution, Caffe's im2col arithmetic;
* :mod:`~porting.layers.square` -- the paper's ``Square`` of the two streams' difference;
* :mod:`~porting.layers.losses` -- ``SoftmaxWithLoss`` / ``Loss('softmaxlog')`` reductions;
* :mod:`~porting.layers.semantics` -- factories that build a model's layers for one framework;
* Caffe's other layer types (BVLC and the forks real nets use): :mod:`~porting.layers.activations`
  (PReLU, ELU, AbsVal, BNLL, Exp, Log, Threshold, Power), :mod:`~porting.layers.deconv`,
  :mod:`~porting.layers.shapes` (Crop, Permute, Tile, ShuffleChannel, Reshape's rule),
  :mod:`~porting.layers.normalize` (SSD Normalize, MVN, the fork's BN),
  :mod:`~porting.layers.reduce` (Reduction, ArgMax), :mod:`~porting.layers.embed`,
  :mod:`~porting.layers.axpy` (SENet),
  :mod:`~porting.layers.unpool` (pooling mask, Upsample), :mod:`~porting.layers.interp` (PSPNet),
  :mod:`~porting.layers.pooling_stochastic` (STOCHASTIC at test time);
* MatConvNet's other test-time types: :mod:`~porting.layers.conv_transpose` (``vl_nnconvt``),
  :mod:`~porting.layers.crop` (``dagnn.Crop``), :mod:`~porting.layers.pdist`,
  :mod:`~porting.layers.norm_offset`, :mod:`~porting.layers.spatial_norm`,
  :mod:`~porting.layers.bilinear_sampler` (and the affine / uniform-scaling grids),
  :mod:`~porting.layers.roi_pooling`.

Nothing here imports the pipeline or the applications.
"""

from porting.layers.batchnorm import (
    CaffeBatchNorm,
    CaffeScale,
    FrozenBatchNorm,
    MatConvNetBatchNorm,
    caffe_batch_norm,
    caffe_global_stats,
    frozen_batch_norm,
    matconvnet_batch_norm,
)
from porting.layers.conv import MatConvNetConv2d, im2col_conv2d
from porting.layers.inner_product import InnerProduct
from porting.layers.losses import FLT_MIN, class_error, softmax_log_loss
from porting.layers.lrn import CaffeLRN, MatConvNetLRN, channel_window_sum
from porting.layers.pooling_caffe import FLT_MAX, CaffePool2d, caffe_pooled_size
from porting.layers.pooling_matconvnet import MatConvNetPool2d
from porting.layers.pooling_static import PoolGeometry, StaticPool2d, pool_with_geometry
from porting.layers.semantics import CAFFE, MATCONVNET, Semantics, get_semantics
from porting.layers.square import Square, square_diff

__all__ = [
    "CAFFE",
    "FLT_MAX",
    "FLT_MIN",
    "MATCONVNET",
    "CaffeBatchNorm",
    "CaffeLRN",
    "CaffePool2d",
    "CaffeScale",
    "FrozenBatchNorm",
    "InnerProduct",
    "MatConvNetBatchNorm",
    "MatConvNetConv2d",
    "MatConvNetLRN",
    "MatConvNetPool2d",
    "PoolGeometry",
    "Semantics",
    "Square",
    "StaticPool2d",
    "caffe_batch_norm",
    "caffe_global_stats",
    "caffe_pooled_size",
    "channel_window_sum",
    "class_error",
    "frozen_batch_norm",
    "get_semantics",
    "im2col_conv2d",
    "matconvnet_batch_norm",
    "pool_with_geometry",
    "softmax_log_loss",
    "square_diff",
]
