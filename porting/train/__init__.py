"""``train``: the paper's siamese training recipe, faithfully, on one device or many.

``reid-porting train DATA_ROOT --out DIR [--arch resnet50|caffenet|vgg16] [--recipe
matconvnet|caffe-dxy] [--init CONVERTED.pth] ...``, or ``torchrun --nproc_per_node N -m
porting.train ...``.

The package, by step: :mod:`~porting.train.recipe` (recipes and the run's configuration),
:mod:`~porting.train.data` (listing, labels, held-out set), :mod:`~porting.train.images`
(resize, JPEG, cache), :mod:`~porting.train.pairs` (the pair samplers),
:mod:`~porting.train.batches` (crops and flips on the device), :mod:`~porting.train.model`
(backbone, heads, initialisation), :mod:`~porting.train.optim` (the two solvers),
:mod:`~porting.train.steps` / :mod:`~porting.train.loops` (iterations and epochs),
:mod:`~porting.train.state` (checkpoints, resume), :mod:`~porting.train.evaluate`,
:mod:`~porting.train.logs`, :mod:`~porting.train.distributed`, :mod:`~porting.train.cli`.

Two recipes, each documented against its source (SOURCES.md sections 2.3, 2.4, 2.7):

``matconvnet`` (alias ``market-matconvnet``; the authors' code, [L] git 3ef47fef):

* **data** (``prepare_data.m``): the training images in ``dir()`` order, labels 1..K by
  identity in file order (0-based here); every image resized once to 256x256 with MATLAB's
  bicubic ``imresize`` on uint8 (:func:`porting.imresize.imresize`) and re-saved as JPEG
  (``imwrite``, MATLAB's default quality 75; re-encoded here with Pillow, ``--jpeg-quality 0``
  skips it); ``set(randi(s, [round(0.1*s), 1])) = 2`` holds out about 10% (drawn *with*
  replacement, so a little under 10%) and puts back the images of identities with fewer than
  10 images; the last identity never gets a held-out image (``cc = [cc; 9]``), reproduced;
* **batches** (``train_id_net_res_2stream.m`` ``getBatch``, ``cnn_train_dag.m``): see
  :mod:`porting.pairs`; random flip (``vl_imreadjpeg(.., 'Flip')``, applied to the 256 image
  before the crop), random 224 crop with offsets 0..32 (227 and 0..29 for CaffeNet), minus
  the Market mean ``[105.6920, 99.1345, 97.9152]`` (RGB, 0-255, no std), both streams;
* **model** (``resnet52_market.m``, ``resnet52_2stream.m``): one shared trunk, dropout 0.9 +
  ``fc751`` (1x1 conv to the number of identities) per stream, Square, dropout 0.9 + ``fc9``;
  new convolutions initialised by the bundled ``initParams.m``: ``U(-1,1) * sqrt(3/(h*w*in))``,
  times 0.1 when a Loss layer follows (both heads), zero biases;
* **loss**: ``dagnn.Loss('softmaxlog')`` *summed* over the batch, derOutputs 0.5 / 0.5 / 1;
* **optimiser**: :class:`porting.optim.MatConvNetSGD` with the multipliers of
  :func:`porting.optim.matconvnet_rules`, momentum 0.9, weight decay 5e-4 (cnn_train_dag
  defaults; the script sets 0.0005), gradients divided by the number of pairs;
  BatchNorm as MatConvNet trains it: batch moments ``sigma = sqrt(var + eps)`` in training
  mode, ``moments`` updated by the ``'average'`` method;
* **schedule**: ResNet-50 75 epochs at ``[0.1 x 70, 0.01 x 5]``, batch 48 (the script);
  CaffeNet 155 epochs, batch 128; VGG16 65 epochs, batch 48 (the paper, Sec. 3.6; no code was
  released for them: the rates follow the ResNet script, ``[0.1 x (E-5), 0.01 x 5]`` with the
  same multiplier rule);
* **validation** each epoch on the held-out images, in MatConvNet's ``'test'`` mode (moments,
  no dropout), with the same pair draws (``processEpoch(.., 'val')``).

``caffe-dxy`` (D-X-Y's Caffe re-implementation, [DXY] git 7468850a, ``generate_*.py``,
``model_libs.py``, ``reid_data_layer.*``, ``solver.proto``):

* every training image (``train.lst``, no held-out set), OpenCV-style bilinear resize to
  256x256 (``ReadImageToCVMat``; see :func:`opencv_resize_linear`), BGR, random mirror and a
  random 224 crop (227 CaffeNet) after it, minus ``mean_value [97.8286, 99.0468, 105.606]``;
* pairs from :class:`porting.pairs.DXYPairSampler`; batch 16 pairs with ``iter_size`` 4
  (ResNet-50), 36 x 3 (VGG16), 128 x 1 (CaffeNet);
* ``SoftmaxWithLoss`` means: identification over the 2B images with weight 1, verification
  over the B pairs with weight 0.5 (``SiameseReID.loss(weights=(0.5, 0.5, 0.5),
  reduction="mean")`` is exactly that); no dropout in the ResNet head (CaffeNet/VGG16 keep
  ``drop6``/``drop7``); heads ``gaussian std 0.01``; BatchNorm frozen
  (``use_global_stats: true``), Scale layers trained;
* :class:`porting.optim.CaffeSGD`, ``base_lr 0.001``, ``lr_policy step``, ``gamma 0.1``,
  ``stepsize 16000``, ``max_iter 18000``, momentum 0.9, weight decay 5e-4; an "epoch" here is
  ``ceil(images / (batch * iter_size))`` iterations (checkpoint period).

Several processes (``torchrun``): every process draws the same global batch (pairs, flips,
crops) and takes the pairs ``rank, rank + world, ...`` (cnn_train_dag's split over GPUs);
gradients and BatchNorm moment ders are summed over processes and divided by the global
batch, so the update is the single-process one. BatchNorm statistics in the forward pass are
per process, as on MatConvNet's multiple GPUs (the script's older versions set two GPUs, HEAD
one): with BatchNorm, N
processes equal one process only up to that.

Around both: a checkpoint per epoch (``net-epoch-N.pth``, the project's format, loadable by
``porting.load``/``validate``, with the optimizer momenta, sampler state, epoch and history
like MatConvNet's ``saveState``), automatic resume from the last one (``cnn_train_dag``'s
``opts.continue = true``), ``log.csv``/``log.json``/``curves.png``, progress lines, seeded
determinism, DistributedDataParallel under torchrun with the same global batch and pairs,
and a retrieval evaluation every ``--eval-every`` epochs and at the end.
"""

from porting.train.batches import BatchStream, Step
from porting.train.cli import build_parser, config_from_args, main
from porting.train.data import TrainData, labels_in_file_order, load_train_data, matconvnet_holdout
from porting.train.images import assemble, build_cache, opencv_resize_linear, to_input
from porting.train.model import backbone_from_checkpoint, build_model_for, init_random_trunk
from porting.train.recipe import TrainConfig, TrainRecipe, get_train_recipe
from porting.train.trainer import Trainer

__all__ = [
    "BatchStream",
    "Step",
    "TrainConfig",
    "TrainData",
    "TrainRecipe",
    "Trainer",
    "assemble",
    "backbone_from_checkpoint",
    "build_cache",
    "build_model_for",
    "build_parser",
    "config_from_args",
    "get_train_recipe",
    "init_random_trunk",
    "labels_in_file_order",
    "load_train_data",
    "main",
    "matconvnet_holdout",
    "opencv_resize_linear",
    "to_input",
]
