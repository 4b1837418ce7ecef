"""reid-porting: faithful PyTorch ports of the MatConvNet and Caffe re-ID models of
Zheng, Zheng & Yang, "A Discriminatively Learned CNN Embedding for Person
Re-identification" (ACM TOMM 2017)."""

from porting.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from porting.feature_extractor import FeatureExtractor
from porting.loading import load, model_from_checkpoint

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "FeatureExtractor",
    "load",
    "load_checkpoint",
    "make_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]
