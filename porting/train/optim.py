"""SGD as the two source frameworks apply it, with their per-parameter multipliers.

MatConvNet ([L] ``examples/cnn_train_dag.m``, the authors' modified beta23, function
``accumulateGradients``), for a parameter with ``learningRate`` ``lr_p``, ``weightDecay``
``wd_p`` and the epoch's global rate ``lr``:

* ``trainMethod = 'gradient'``, skipped when ``lr*lr_p == 0`` and ``wd*wd_p == 0``::

      parDer   = (1/batchSize) * der + (wd * wd_p) * w  % vl_taccum(1/batchSize, der, decay, w)
      momentum = mu * momentum - parDer                % vl_taccum(mu, momentum, -1, parDer)
      w        = w + (lr * lr_p) * momentum            % vl_taccum(1, w, thisLR, delta)

  ``der`` is the gradient of the *summed* losses (``dagnn.Loss`` sums over the batch, the
  derOutputs weights 0.5 / 0.5 / 1 scale it) and ``batchSize`` the number of pairs in the
  batch, over all GPUs. This is *not* the form ``v = mu*v - lr*(g + wd*w); w += v`` (where
  the rate sits inside the momentum): the rate multiplies the momentum at every step, so a
  change of rate (epoch 71) acts on the accumulated momentum at once. It equals
  ``torch.optim.SGD`` (``buf = mu*buf + (g + wd*w); w -= lr*buf``) with ``buf = -momentum``
  and ``g = der / batchSize``; :class:`MatConvNetSGD` writes it out itself because it also
  needs per-parameter rates and decays, and the ``'average'`` method below.
* ``trainMethod = 'average'`` (the BatchNorm ``moments``; ``dagnn.BatchNorm.attach`` sets
  it)::

      w = (1 - lr_p) * w + (lr_p / batchSize / fanout) * der

  with the *parameter's* rate only (no global rate, no decay). ``dagnn.BatchNorm.backward``
  returns the batch moments ``[mu, sqrt(var + eps)]`` multiplied by the number of images of
  the call (``derParams{3} * size(inputs{1},4)``), and a parameter shared by the two streams
  (``fanout`` 2) sums both calls' ders, so the update blends in the mean of the two streams'
  moments once per step. :class:`MomentsRecorder` collects exactly that ``der``.
  (:class:`porting.layers.batchnorm.MatConvNetBatchNorm`'s optional ``momentum`` blends at every
  forward call instead, i.e. twice per step with the two streams, and is left unset.)

Caffe (``SGDSolver<Dtype>::ApplyUpdate``: ``Normalize``, ``Regularize``,
``ComputeUpdateValue``, ``Net::Update``), for ``lr_mult``/``decay_mult``::

    diff    = diff / iter_size                     % Normalize (iter_size > 1)
    diff   += (weight_decay * decay_mult) * w      % Regularize, L2
    history = (rate * lr_mult) * diff + momentum * history
    w      -= history

Here the rate *is* inside the momentum (:class:`CaffeSGD`).

The per-parameter multipliers of the paper's recipe come from :func:`matconvnet_rules`
(``resnet52_market.m`` + the bundled ``initParams.m``) and :func:`caffe_rules` (D-X-Y's
NetSpec generators, Caffe defaults).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from porting.layers import CaffeBatchNorm, MatConvNetBatchNorm

__all__ = [
    "ParamRule",
    "matconvnet_param_list",
    "matconvnet_rules",
    "caffe_rules",
    "MatConvNetSGD",
    "CaffeSGD",
    "MomentsRecorder",
    "freeze_caffe_batchnorm",
    "parse_schedule",
    "format_schedule",
    "matconvnet_epoch_lr",
    "caffe_step_lr",
]


@dataclass
class ParamRule:
    """How one tensor is trained.

    ``key``: its ``state_dict`` name; ``method``: ``"gradient"``, ``"average"`` (MatConvNet
    BatchNorm moments) or ``"frozen"``; ``lr_mult``/``wd_mult``: MatConvNet's
    ``learningRate``/``weightDecay`` (Caffe's ``lr_mult``/``decay_mult``); ``fanout``: how
    many layers use it (2 for the shared trunk and ``fc751``); ``index``: 1-based position in
    the source framework's parameter list; ``source_name``: its name there
    (``res2a_branch2a_filter``...); ``why``: where the values come from.
    """

    key: str
    method: str
    lr_mult: float
    wd_mult: float
    fanout: int = 1
    index: int = 0
    source_name: str = ""
    why: str = ""


# --------------------------------------------------------------------------------------------
# Parameter lists and the recipes' multipliers
# --------------------------------------------------------------------------------------------


def _layer_names(module: nn.Module) -> dict[str, str]:
    if hasattr(module, "caffe_layer_names"):
        return module.caffe_layer_names()
    return {n: n for n, _ in module.named_modules() if n}


_SUFFIX = {"weight": "filter", "bias": "bias", "mult": "mult", "moments": "moments"}


def matconvnet_param_list(trunk: nn.Module, prefix: str = "") -> list[tuple[str, str, bool]]:
    """The trunk's tensors in MatConvNet's ``net.params`` order: ``(key, source_name,
    is_moments)``.

    MatConvNet's importer (``import-caffe.py``) lists parameters layer by layer in prototxt
    order, a convolution as ``<layer>_filter`` then ``<layer>_bias`` (when it has one), a
    BatchNorm (with the following Scale folded in) as ``<bn>_mult``, ``<bn>_bias``,
    ``<bn>_moments``. The canonical models register their submodules in the prototxt's
    order, so walking the modules gives the same list (``res2a_branch1`` before
    ``res2a_branch2a``, as in ResNet-50-deploy.prototxt).
    """
    names = _layer_names(trunk)
    out = []
    for path, mod in trunk.named_modules():
        layer = names.get(path, path)
        for pname, _ in mod.named_parameters(recurse=False):
            out.append((prefix + (f"{path}." if path else "") + pname,
                        f"{layer}_{_SUFFIX.get(pname, pname)}", False))
        if isinstance(mod, MatConvNetBatchNorm):
            out.append((prefix + (f"{path}." if path else "") + "moments",
                        f"{layer}_moments", True))
    return out


def matconvnet_rules(model: nn.Module, *, backbone_lr: tuple[float, float] = (0.001, 0.02),
                     fc751_lr: tuple[float, float] = (0.01, 0.2),
                     fc9_lr: tuple[float, float] = (0.01, 0.2)) -> list[ParamRule]:
    """The authors' per-parameter rates for a :class:`~porting.models.SiameseReID`.

    * backbone (``resnet52_market.m``): ``for i = 1:numel(net.params)``: ``learningRate =
      0.02`` for even ``i``, ``0.001`` for odd ``i``, ``weightDecay = 1``, over the ImageNet
      model's parameters in file order, *including* each BatchNorm's ``moments`` (whose
      ``learningRate`` is the averaging rate of the ``'average'`` method). For ResNet-50 this
      gives conv1 filter 0.001 / bias 0.02 and then, since every later layer adds an even
      number of parameters, every other filter 0.02, BN mult 0.001, bias 0.02, moments 0.001;
    * ``fc751f`` 0.01 and ``fc751b`` 0.2 (``train_id_net_res_2stream.m`` sets them, and the
      bundled ``initParams.m`` gives the same to a new convolution followed by a Loss layer);
    * ``fc9f``/``fc9b``: the bundled ``initParams.m`` (``matlab/+dagnn/@DagNN/initParams.m``
      of [L]) sets a new dagnn.Conv to 0.1 / 2 and, when the next layer is a Loss, to
      0.01 / 0.2; ``fc9`` is added right before ``softmaxloss_D`` in ``resnet52_2stream.m``,
      so 0.01 / 0.2 (with the epoch rate 0.1: 1e-3, the paper's "learning rate 0.001").
      Stock MatConvNet would leave them at dagnn.Conv's default 1; pass ``fc9_lr=(1, 1)``
      for that reading;
    * every ``weightDecay`` is 1 (the backbone's set by ``resnet52_market.m``, the heads'
      dagnn.Conv default), the BatchNorm ``mult``/``bias`` included.
    """
    rules: list[ParamRule] = []
    for i, (key, sname, is_moments) in enumerate(
            matconvnet_param_list(model.trunk, "trunk."), start=1):
        rules.append(ParamRule(
            key, "average" if is_moments else "gradient",
            backbone_lr[1] if i % 2 == 0 else backbone_lr[0], 1.0, fanout=2, index=i,
            source_name=sname,
            why="resnet52_market.m: mod(i,2)==0 -> 0.02 else 0.001; weightDecay=1"))
    n = len(rules)
    heads = [("fc751.weight", "fc751f", fc751_lr[0], 2), ("fc751.bias", "fc751b", fc751_lr[1], 2),
             ("fc9.weight", "fc9f", fc9_lr[0], 1), ("fc9.bias", "fc9b", fc9_lr[1], 1)]
    for j, (key, sname, lr, fanout) in enumerate(heads, start=1):
        rules.append(ParamRule(key, "gradient", lr, 1.0, fanout=fanout, index=n + j,
                               source_name=sname,
                               why="train_id_net_res_2stream.m / initParams.m (conv before a "
                                   "Loss: 0.01 filter, 0.2 bias)"))
    _check_covers(model, rules)
    return rules


def caffe_rules(model: nn.Module) -> list[ParamRule]:
    """D-X-Y's multipliers: Caffe's defaults everywhere (``lr_mult 1``, ``decay_mult 1``).

    The generators (``generate_{resnet50,caffenet,vgg16}.py`` with ``model_libs.py``) give no
    ``param {}`` to the trained layers, so convolutions, InnerProducts and Scales use
    ``lr_mult: 1, decay_mult: 1`` for weights and biases alike. Every BatchNorm has
    ``use_global_stats: true`` and Caffe's ``BatchNormLayer::LayerSetUp`` forces its three
    blobs to ``lr_mult 0``: they are frozen (buffers here).
    """
    rules = []
    for i, (key, _) in enumerate(model.named_parameters(), start=1):
        rules.append(ParamRule(key, "gradient", 1.0, 1.0, index=i, source_name=key,
                               why="Caffe default lr_mult 1, decay_mult 1"))
    _check_covers(model, rules)
    return rules


def _check_covers(model: nn.Module, rules: list[ParamRule]) -> None:
    covered = {r.key for r in rules}
    missing = [k for k, p in model.named_parameters() if p.requires_grad and k not in covered]
    if missing:
        raise ValueError(f"no training rule for parameters {missing[:5]}")


def freeze_caffe_batchnorm(model: nn.Module) -> int:
    """``use_global_stats: true`` on every Caffe BatchNorm (D-X-Y's train nets); returns how
    many."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, CaffeBatchNorm):
            mod.use_global_stats = True
            n += 1
    return n


# --------------------------------------------------------------------------------------------
# MatConvNet's BatchNorm moments der
# --------------------------------------------------------------------------------------------


class MomentsRecorder:
    """Forward hooks giving each MatConvNet BatchNorm's ``der`` for the ``'average'`` update.

    In training mode every call adds ``[mean, sqrt(var + eps)] * N`` (biased variance over
    N x H x W, N the images of the call), as ``dagnn.BatchNorm.backward`` returns it; calls
    in eval mode or while :attr:`enabled` is False are ignored. :meth:`flat` gives all ders
    in one tensor (to all-reduce across processes), :meth:`reset` clears them.
    """

    def __init__(self, model: nn.Module, prefix: str = "") -> None:
        self.modules: dict[str, MatConvNetBatchNorm] = {
            f"{prefix}{name}.moments": m for name, m in model.named_modules()
            if isinstance(m, MatConvNetBatchNorm)}
        self.enabled = True
        self._der: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self._handles = [m.register_forward_hook(self._hook(k)) for k, m in self.modules.items()]

    def _hook(self, key: str):
        def hook(mod: MatConvNetBatchNorm, inputs: tuple[torch.Tensor, ...], _out) -> None:
            if not (self.enabled and mod.training):
                return
            x = inputs[0]
            with torch.no_grad():
                dims = [0] + list(range(2, x.dim()))
                var, mean = torch.var_mean(x.detach(), dim=dims, correction=0)
                moments = torch.stack([mean, torch.sqrt(var + mod.eps)], dim=1) * x.shape[0]
                prev = self._der.get(key)
                self._der[key] = moments if prev is None else prev + moments
                self.calls[key] = self.calls.get(key, 0) + 1
        return hook

    def __len__(self) -> int:
        return len(self.modules)

    def reset(self) -> None:
        self._der.clear()
        self.calls.clear()

    def ders(self) -> dict[str, torch.Tensor]:
        return dict(self._der)

    def flat(self) -> torch.Tensor | None:
        """All ders concatenated in module order (zeros for a module not called)."""
        if not self.modules:
            return None
        parts = []
        for key, mod in self.modules.items():
            d = self._der.get(key)
            parts.append((torch.zeros_like(mod.moments) if d is None else d).reshape(-1))
        return torch.cat(parts)

    def set_flat(self, flat: torch.Tensor) -> None:
        off = 0
        for key, mod in self.modules.items():
            n = mod.moments.numel()
            self._der[key] = flat[off:off + n].view_as(mod.moments)
            off += n

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


# --------------------------------------------------------------------------------------------
# The two update rules
# --------------------------------------------------------------------------------------------


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    out = dict(model.named_parameters())
    out.update(dict(model.named_buffers()))
    return out


class _RuleOptimizer:
    kind = ""

    def __init__(self, model: nn.Module, rules: Iterable[ParamRule], momentum: float = 0.9,
                 weight_decay: float = 5e-4) -> None:
        self.rules = list(rules)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        tensors = _tensors(model)
        missing = [r.key for r in self.rules if r.key not in tensors]
        if missing:
            raise ValueError(f"rules name tensors the model does not have: {missing[:5]}")
        self.tensors = {r.key: tensors[r.key] for r in self.rules}
        self.buffers = {r.key: torch.zeros_like(self.tensors[r.key]) for r in self.rules
                        if r.method == "gradient"}
        self._groups: dict[tuple[float, float], list[str]] = {}
        for r in self.rules:
            if r.method == "gradient":
                self._groups.setdefault((r.lr_mult, r.wd_mult), []).append(r.key)

    def zero_grad(self) -> None:
        for r in self.rules:
            t = self.tensors[r.key]
            if isinstance(t, nn.Parameter):
                t.grad = None

    def _grads(self, keys: list[str]) -> list[torch.Tensor]:
        out = []
        for k in keys:
            g = self.tensors[k].grad
            out.append(torch.zeros_like(self.tensors[k]) if g is None else g)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "rules": [asdict(r) for r in self.rules],
                "buffers": {k: v.detach().cpu().clone() for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state is {state.get('kind')!r}, expected {self.kind!r}")
        mine = [(r.key, r.method, r.lr_mult, r.wd_mult) for r in self.rules]
        theirs = [(r["key"], r["method"], r["lr_mult"], r["wd_mult"]) for r in state["rules"]]
        if mine != theirs:
            raise ValueError("the checkpoint's parameter rules differ from this run's")
        self.momentum = float(state["momentum"])
        self.weight_decay = float(state["weight_decay"])
        for k, v in state["buffers"].items():
            self.buffers[k].copy_(v)


class MatConvNetSGD(_RuleOptimizer):
    """``cnn_train_dag.m``'s ``accumulateGradients`` (momentum 0.9, weightDecay 5e-4
    defaults of cnn_train_dag / the training script), see the module docstring.

    ``step(lr, batch_size, grad_scale, moments_der)``: ``lr`` is the epoch's global rate,
    ``batch_size`` the pairs of the (global) batch, ``grad_scale`` turns the ``.grad`` into
    the summed ``der`` (the world size under DistributedDataParallel, which averages),
    ``moments_der`` maps a moments key to its der (:class:`MomentsRecorder`, summed over
    processes).
    """

    kind = "matconvnet"

    @torch.no_grad()
    def step(self, lr: float, batch_size: int, grad_scale: float = 1.0,
             moments_der: dict[str, torch.Tensor] | None = None) -> None:
        mu = self.momentum
        for (lr_mult, wd_mult), keys in self._groups.items():
            this_lr, this_decay = lr * lr_mult, self.weight_decay * wd_mult
            if not (this_lr > 0 or this_decay > 0):
                continue
            params = [self.tensors[k] for k in keys]
            moms = [self.buffers[k] for k in keys]
            par = torch._foreach_mul(self._grads(keys), grad_scale / batch_size)
            if this_decay:
                torch._foreach_add_(par, params, alpha=this_decay)
            torch._foreach_mul_(moms, mu)
            torch._foreach_sub_(moms, par)
            torch._foreach_add_(params, moms, alpha=this_lr)
        moments_der = moments_der or {}
        for r in self.rules:
            if r.method != "average":
                continue
            der = moments_der.get(r.key)
            w = self.tensors[r.key]
            w.mul_(1.0 - r.lr_mult)
            if der is not None:
                w.add_(der, alpha=r.lr_mult / batch_size / r.fanout)


class CaffeSGD(_RuleOptimizer):
    """Caffe's ``SGDSolver`` update (see the module docstring); ``step(rate, iter_size,
    grad_scale)`` with the iteration's rate from :func:`caffe_step_lr`."""

    kind = "caffe"

    @torch.no_grad()
    def step(self, rate: float, iter_size: int = 1, grad_scale: float = 1.0) -> None:
        for (lr_mult, wd_mult), keys in self._groups.items():
            params = [self.tensors[k] for k in keys]
            hist = [self.buffers[k] for k in keys]
            diff = torch._foreach_mul(self._grads(keys), grad_scale / iter_size)
            decay = self.weight_decay * wd_mult
            if decay:
                torch._foreach_add_(diff, params, alpha=decay)
            torch._foreach_mul_(hist, self.momentum)
            torch._foreach_add_(hist, diff, alpha=rate * lr_mult)
            torch._foreach_sub_(params, hist)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def parse_schedule(text: str) -> list[float]:
    """``"0.1*70,0.01*5"`` (MATLAB's ``[0.1*ones(1,70), 0.01*ones(1,5)]``) to a list."""
    out: list[float] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        value, _, count = part.partition("*")
        try:
            v, n = float(value), int(count) if count else 1
        except ValueError:
            raise ValueError(f"bad learning-rate schedule item {part!r}: expected "
                             "RATE or RATE*EPOCHS") from None
        if n < 1 or not math.isfinite(v) or v < 0:
            raise ValueError(f"bad learning-rate schedule item {part!r}")
        out += [v] * n
    if not out:
        raise ValueError(f"empty learning-rate schedule {text!r}")
    return out


def format_schedule(rates: list[float]) -> str:
    parts: list[str] = []
    for v in rates:
        if parts and parts[-1][0] == v:
            parts[-1] = (v, parts[-1][1] + 1)
        else:
            parts.append((v, 1))
    return ",".join(f"{v:g}*{n}" for v, n in parts)


def matconvnet_epoch_lr(schedule: list[float], epoch: int) -> float:
    """``opts.learningRate(min(epoch, numel(opts.learningRate)))`` for a 1-based epoch."""
    return schedule[min(epoch, len(schedule)) - 1]


def caffe_step_lr(base_lr: float, gamma: float, stepsize: int, iteration: int) -> float:
    """Caffe ``lr_policy: "step"``: ``base_lr * gamma ^ floor(iter / stepsize)`` (0-based
    iteration)."""
    return base_lr * gamma ** (iteration // stepsize)
