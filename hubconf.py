"""``torch.hub`` entry points for the paper's networks (``torch.hub.load(REPO, NAME, ...)``).

Each builds the layer-exact architecture of :mod:`porting.models` with random weights, or, given
``checkpoint=`` (a ``.pth`` / ``.safetensors`` file or a :func:`porting.save_pretrained` folder),
the converted or trained model it holds, which must be that architecture::

    net = torch.hub.load("path/to/reid-porting", "siamese_resnet50", source="local",
                         checkpoint="net-epoch-75.safetensors")
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

dependencies = ["torch", "torchvision", "numpy", "scipy", "safetensors"]

_ROOT = Path(__file__).resolve().parent


def _porting() -> Any:
    """The package, also from a plain clone: its sub-packages live in top-level folders
    (``models/`` is ``porting.models``), which an install maps and a clone does not."""
    try:
        installed = importlib.util.find_spec("porting.models") is not None
    except ImportError:
        installed = False
    if not installed:
        spec = importlib.util.spec_from_file_location(
            "porting", _ROOT / "porting" / "__init__.py",
            submodule_search_locations=[str(_ROOT / "porting"), str(_ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["porting"] = module
        spec.loader.exec_module(module)
    import porting

    return porting


def _build(backbone: str, siamese: bool, spec: dict[str, Any], checkpoint: Any,
           kwargs: dict[str, Any], device: str, exact: bool) -> Any:
    porting = _porting()
    if checkpoint is None:
        from porting.models import build_model

        return build_model(spec).eval().to(device)
    if kwargs:
        raise ValueError(f"with checkpoint= the architecture is the checkpoint's; drop "
                         f"{sorted(kwargs)}")
    if Path(checkpoint).is_dir():
        model = porting.from_pretrained(checkpoint, canonical=True, device=device, exact=exact)
    else:
        model = porting.load(checkpoint, canonical=True, device=device, exact=exact)
    arch = model.checkpoint_fields.get("arch") or {}
    name = arch.get("name")
    trunk = (arch.get("trunk") or {}).get("name") if name == "siamese" else name
    if trunk != backbone or (siamese and name != "siamese"):
        want = f"siamese {backbone}" if siamese else backbone
        raise ValueError(f"{checkpoint}: holds a {'siamese ' if name == 'siamese' else ''}"
                         f"{trunk} model, not a {want}")
    return model


def siamese_resnet50(checkpoint: Any = None, *, num_ids: int = 751, width: int = 64,
                     semantics: str = "matconvnet", dropout: float = 0.9,
                     device: str = "cpu", exact: bool = False, **kwargs: Any) -> Any:
    """The paper's two-stream ResNet-50 (:class:`porting.models.SiameseReID`, MatConvNet
    semantics, 751 Market-1501 identities, feature = pool5, ``32 * width`` = 2048 wide)."""
    spec = {"name": "siamese", "trunk": {"name": "resnet50", "kwargs": {
        "semantics": semantics, "width": width, "num_classes": None}},
        "kwargs": {"feat_dim": 32 * width, "num_ids": num_ids, "dropout": dropout, **kwargs}}
    extra = kwargs if checkpoint is not None else {}
    return _build("resnet50", True, spec, checkpoint, extra, device, exact)


def caffenet(checkpoint: Any = None, *, device: str = "cpu", exact: bool = False,
             **kwargs: Any) -> Any:
    """CaffeNet (:class:`porting.models.CaffeNet`; keyword arguments are its), or a (siamese)
    CaffeNet checkpoint."""
    return _build("caffenet", False, {"name": "caffenet", "kwargs": kwargs}, checkpoint,
                  kwargs, device, exact)


def vgg16(checkpoint: Any = None, *, device: str = "cpu", exact: bool = False,
          **kwargs: Any) -> Any:
    """VGG16 (:class:`porting.models.VGG16`; keyword arguments are its), or a (siamese) VGG16
    checkpoint."""
    return _build("vgg16", False, {"name": "vgg16", "kwargs": kwargs}, checkpoint, kwargs,
                  device, exact)


def resnet50_caffe(checkpoint: Any = None, *, device: str = "cpu", exact: bool = False,
                   **kwargs: Any) -> Any:
    """Kaiming He's Caffe ResNet-50 (:class:`porting.models.ResNet50`, Caffe semantics;
    keyword arguments are its), or a (siamese) ResNet-50 checkpoint."""
    spec = {"name": "resnet50", "kwargs": {"semantics": "caffe", **kwargs}}
    return _build("resnet50", False, spec, checkpoint, kwargs, device, exact)
