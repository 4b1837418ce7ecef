"""What is exported: the descriptor or the two-stream net around a model, and the PyTorch
reference each exported file must match."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from porting.export.rewrite import ExportError, GraphProgram, exportable, set_im2col
from porting.graph import GraphModule
from porting.layers import CaffeBatchNorm, MatConvNetBatchNorm, MatConvNetLRN
from porting.recipes import Recipe, get_recipe, l2_normalize, pool_positions


class _CanonicalTrunk(nn.Module):
    """A canonical model's feature map: ``SiameseReID.features`` or a backbone's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from porting.features import feature_map

        return feature_map(self.model, x)


class EmbedNet(nn.Module):
    """``features`` -> the recipe's descriptor: per-position L2, spatial sum, flip, L2.

    With ``flip_input=True`` the flipped pass takes a second input (the preprocessed flipped
    image; needed when flipping does not commute with the preprocessing, e.g. a mean image),
    otherwise the batch is flipped left-right in the graph.
    """

    def __init__(self, features: nn.Module, recipe: Recipe, flip_input: bool = False) -> None:
        super().__init__()
        self.features = features
        self.recipe = recipe
        self.flip_input = bool(flip_input and recipe.flip)
        self.batch_flip = False  # set by build_export when the features are per item
        # The LRN-as-L2 of porting.recipes; a module so that exportable() can fix it.
        self.position_l2 = MatConvNetLRN((4096, 0.0, 1.0, 0.5)) if recipe.position_l2 else None

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() == 2:
            return fmap
        if self.position_l2 is not None:
            if fmap.shape[1] > 2048:
                raise ExportError("the LRN-as-L2 trick [4096 0 1 0.5] needs at most 2048 "
                                  "channels")
            fmap = self.position_l2(fmap)
        return fmap.sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, x_flipped: torch.Tensor | None = None) -> torch.Tensor:
        if not self.recipe.flip:
            f = self._pool(self.features(x))
        else:
            xf = x_flipped if self.flip_input else torch.flip(x, dims=[3])
            if self.batch_flip:
                both = self._pool(self.features(torch.cat([x, xf])))
                both = both.reshape(2, -1, both.shape[-1])
                f = both[0] + both[1]
            else:
                f = self._pool(self.features(x)) + self._pool(self.features(xf))
        return l2_normalize(f) if self.recipe.l2 else f


class SiameseNet(nn.Module):
    """Two batches -> the three logit maps (identity 1, identity 2, verification)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.body(x1, x2))



# What to export, and the PyTorch reference it must match


def _describe(model: nn.Module) -> str:
    arch = getattr(model, "checkpoint_arch", None)
    if isinstance(model, GraphModule):
        src = (getattr(model, "checkpoint_source", None) or {}).get("file")
        what = " ".join(x for x in (model.graph.get("framework"), arch, "graph") if x)
        return (f"a converted {what}" + (f" from {src}" if src else "")
                + f" with input(s) {model.inputs} and output(s) {model.default_outputs}")
    return f"a canonical {type(model).__name__}"


def _siamese_vars(graph: GraphModule) -> tuple[list[str], list[str]]:
    """(the two image inputs, the three logit maps) of a converted two-stream graph."""
    heads = [layer for layer in graph.layers if layer["op"] == "softmax_loss"]
    labels = {layer["inputs"][1] for layer in graph.layers
              if layer["op"] in ("softmax_loss", "class_error", "accuracy", "topk_error")
              and len(layer["inputs"]) > 1}
    logits = [layer["inputs"][0] for layer in heads] if heads else list(graph.default_outputs)
    images = [v for v in graph.inputs if v not in labels and v in graph.needed(set(logits))]
    if len(logits) != 3 or len(images) != 2:
        raise ExportError(
            f"--what siamese needs the two-stream net (two images -> three logit maps); the "
            f"checkpoint is {_describe(graph)}")
    return images, logits


def _feature_var(model: GraphModule, feature_var: str | None) -> str:
    var = feature_var or (getattr(model, "checkpoint_meta", None) or {}).get("feature_var")
    if not var:
        raise ExportError("the checkpoint does not say which variable is the feature "
                          "(meta.feature_var); pass --feature-var")
    if var not in model.var_names():
        raise ExportError(f"feature variable {var!r} is not in the graph")
    return str(var)


class Spec:
    """An export request resolved against a model: the net to trace, names, reference."""

    def __init__(self, net: nn.Module, reference: Callable[..., tuple[torch.Tensor, ...]],
                 input_names: list[str], output_names: list[str], info: dict[str, Any]) -> None:
        self.net, self.reference = net, reference
        self.input_names, self.output_names, self.info = input_names, output_names, info


def build_export(model: nn.Module, what: str, example: Sequence[torch.Tensor], *,
                 recipe: str | None = None, feature_var: str | None = None,
                 rewrite: bool = True) -> Spec:
    """Resolve ``what`` (``embed`` / ``siamese``) for ``model`` (as :func:`porting.load`
    returns it) and rewrite it for export with ``example`` (batch 1) as the probe input.

    For ``embed``, ``example`` holds one batch, or two (image, flipped image) when the recipe
    flips and the flip must be fed (see :class:`EmbedNet`). ``rewrite=False`` skips the
    rewrite (only the reference is wanted).
    """
    from porting.features import feature_map
    from porting.models import SiameseReID

    model = model.eval()
    info: dict[str, Any] = {"what": what, "model": _describe(model)}
    if what == "siamese":
        if isinstance(model, GraphModule):
            images, logits = _siamese_vars(model)
            body = GraphProgram(model, logits)
            if body.feeds != images:
                raise ExportError(f"the logit maps need inputs {body.feeds}, expected {images}")

            def reference(x1, x2):
                out = model(**{images[0]: x1, images[1]: x2}, outputs=logits)
                return tuple(out[v] for v in logits)
            names_in, names_out = images, logits
        elif isinstance(model, SiameseReID):
            body = copy.deepcopy(model)

            def reference(x1, x2):
                return tuple(model(x1, x2))
            names_in = ["data", "data_2"]
            names_out = ["prediction", "prediction_2", "dist_prediction"]
        else:
            raise ExportError(f"--what siamese needs the two-stream net; the checkpoint is "
                              f"{_describe(model)}")
        net = SiameseNet(body)
    elif what == "embed":
        name = recipe or getattr(model, "recipe", None)
        if not name:
            raise ExportError("the checkpoint names no descriptor recipe; pass --recipe")
        try:
            rec = get_recipe(name)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        flip_input = len(example) > 1
        if isinstance(model, GraphModule):
            var = _feature_var(model, feature_var)
            features: nn.Module = GraphProgram(model, [var])
            if len(features.feeds) != 1:
                raise ExportError(f"feature {var!r} depends on {len(features.feeds)} inputs "
                                  f"{features.feeds}; an embedding takes one")
            info["feature_var"] = var
            first = features.feeds[0]
        else:
            features = _CanonicalTrunk(copy.deepcopy(model))
            first = "data"

        def reference(x, xf=None):
            with torch.no_grad():
                if isinstance(model, SiameseReID) and not flip_input:
                    return (model.embed(x, rec.name),)
                f = pool_positions(feature_map(model, x, feature_var), rec)
                if rec.flip:
                    xf = torch.flip(x, dims=[3]) if xf is None else xf
                    f = f + pool_positions(feature_map(model, xf, feature_var), rec)
                return (l2_normalize(f) if rec.l2 else f,)
        net = EmbedNet(features, rec, flip_input)
        names_in = [first] + ([f"{first}_flipped"] if flip_input else [])
        names_out = ["descriptor"]
        info.update(recipe=rec.name, flip="input" if flip_input else
                    ("in-graph" if rec.flip else "none"))
    else:
        raise ExportError(f"--what must be 'embed' or 'siamese', got {what!r}")
    if not rewrite:
        return Spec(net, reference, names_in, names_out, info)
    try:
        set_im2col(net, False)  # the probe only needs shapes: the fast convolution will do
        exportable(net, *example)
        set_im2col(net, True)
    except ExportError:
        raise
    except (RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot run the model on a {tuple(example[0].shape)} input: "
                          f"{msg}") from None
    for p in net.parameters():
        p.requires_grad_(False)
    if isinstance(net, EmbedNet) and net.recipe.flip:
        # One trunk pass on [x; flipped x] (half the graph) unless a layer mixes the batch.
        net.batch_flip = _batch_independent(net)
        info["flip_batched"] = net.batch_flip
    return Spec(net, reference, names_in, names_out, info)


_BATCH_MIXING_OPS = {"pair_split_square", "pair_same_label", "softmax_loss", "class_error",
                     "accuracy", "topk_error"}


def _batch_independent(net: nn.Module) -> bool:
    """True when every item's output depends on that item only (test-time statistics)."""
    for m in net.modules():
        if isinstance(m, CaffeBatchNorm | MatConvNetBatchNorm):  # left as is: batch stats
            return False
        if isinstance(m, GraphProgram):
            for layer, key in m.steps:
                if layer["op"] in _BATCH_MIXING_OPS or (layer["op"] == "caffe_bn"
                                                        and key is None):
                    return False
    return True


def double_export(model: nn.Module, what: str, example: Sequence[torch.Tensor],
                  rewrite: bool = True, **kwargs: Any) -> Spec:
    """:func:`build_export` of a float64 copy of ``model`` (constants computed in float64)."""
    spec = build_export(copy.deepcopy(model).double(), what, [e.double() for e in example],
                        rewrite=rewrite, **kwargs)
    spec.net.double()
    return spec



# Export + check

