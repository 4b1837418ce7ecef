"""Layer-exact PyTorch definitions of the paper's networks (Caffe layer names).

Every backbone takes ``semantics="caffe"`` or ``"matconvnet"``: the same architecture with
the exact pooling, LRN, BatchNorm and fully-connected behaviour of that framework.
"""

from porting.models.caffenet import CaffeNet
from porting.models.resnet import Bottleneck, ResNet50
from porting.models.siamese import SiameseLoss, SiameseOutput, SiameseReID
from porting.models.vgg import VGG16

__all__ = [
    "Bottleneck",
    "CaffeNet",
    "ResNet50",
    "SiameseLoss",
    "SiameseOutput",
    "SiameseReID",
    "VGG16",
]

from porting.models.registry import BACKBONES, build_model  # noqa: E402

__all__ += ["BACKBONES", "build_model"]
