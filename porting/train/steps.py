"""One training iteration of each recipe: forward, the summed or averaged losses, backward and the
update."""

from __future__ import annotations

import contextlib

import torch

from porting.train.batches import Step
from porting.train.distributed import all_sum
from porting.train.optim import (
    CaffeSGD,
    MatConvNetSGD,
)


class Steps:
    """The iteration steps of :class:`~porting.train.trainer.Trainer` (its model, optimiser and
    recorder)."""

    def _forward(self, s: Step, weights: tuple[float, float, float], reduction: str):
        from porting.layers import class_error
        from porting.models import SiameseReID

        out = self.net(s.x1, s.x2)
        loss = SiameseReID.loss(out, s.label, s.label_2, s.same, weights, reduction)
        n = s.x1.shape[0]
        with torch.no_grad():
            if reduction == "sum":
                objs = [loss.objective, loss.objective_2, loss.objective_final]
            else:
                objs = [loss.objective * n, loss.objective_2 * n, loss.objective_final * n]
            stats = torch.stack([torch.tensor(float(n), device=objs[0].device), *[o.detach()
                                 for o in objs],
                                 class_error(out.prediction, s.label),
                                 class_error(out.prediction_2, s.label_2),
                                 class_error(out.dist_prediction, s.same)])
        return loss, stats

    def train_step_matconvnet(self, s: Step, lr: float) -> torch.Tensor:
        """One ``cnn_train_dag`` iteration: forward, backward of the summed weighted losses,
        ``accumulateGradients``."""
        r = self.recipe
        assert self.recorder is not None
        self.recorder.reset()
        loss, stats = self._forward(s, r.loss_weights, "sum")
        loss.total.backward()
        flat = self.recorder.flat()
        if flat is not None and self.world > 1:
            flat = all_sum(flat, self.device)
        if flat is not None:
            self.recorder.set_flat(flat)
        assert isinstance(self.opt, MatConvNetSGD)
        self.opt.step(lr, s.n_global, grad_scale=float(self.world),
                      moments_der=self.recorder.ders())
        self.opt.zero_grad()
        return stats

    def train_step_caffe(self, steps: list[Step], rate: float) -> torch.Tensor:
        """One Caffe iteration: ``iter_size`` forward/backward passes (each a mean over its
        global batch), then ``ApplyUpdate``."""
        r = self.recipe
        total = None
        for k, s in enumerate(steps):
            ctx = (self.net.no_sync() if self.world > 1 and k < len(steps) - 1
                   else contextlib.nullcontext())
            with ctx:
                loss, stats = self._forward(s, r.loss_weights, "mean")
                # this process's share of the global mean (equal to the mean itself alone)
                (loss.total * (s.x1.shape[0] / s.n_global)).backward()
            total = stats if total is None else total + stats
        assert isinstance(self.opt, CaffeSGD)
        self.opt.step(rate, r.iter_size, grad_scale=float(self.world))
        self.opt.zero_grad()
        assert total is not None
        return total

    def _eval_forward(self, s: Step):
        # the bare module: no DDP hooks in evaluation
        from porting.layers import class_error
        from porting.models import SiameseReID

        out = self.model(s.x1, s.x2)
        loss = SiameseReID.loss(out, s.label, s.label_2, s.same, self.recipe.loss_weights, "sum")
        n = s.x1.shape[0]
        stats = torch.stack([torch.tensor(float(n), device=out.prediction.device),
                             loss.objective, loss.objective_2, loss.objective_final,
                             class_error(out.prediction, s.label),
                             class_error(out.prediction_2, s.label_2),
                             class_error(out.dist_prediction, s.same)])
        return loss, stats
