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


def _verification_error(out, same: torch.Tensor, verification: str, margin: float
                        ) -> torch.Tensor:
    """Wrongly judged pairs: the 2-way arg-max, or a distance on the wrong side of m/2."""
    from porting.layers import class_error

    if verification == "contrastive":
        judged_same = out.dist_prediction.reshape(-1) < margin / 2
        truth = same.reshape(-1) == 0
        return (judged_same != truth).sum().to(out.dist_prediction.dtype)
    return class_error(out.dist_prediction, same)


def losses_and_stats(net, s: Step, weights: tuple[float, float, float], reduction: str,
                     verification: str, margin: float):
    """The three weighted losses of one batch and its log statistics (pairs, the three
    objectives summed over pairs, the three error counts)."""
    from porting.layers import class_error
    from porting.models import SiameseReID

    out = net(s.x1, s.x2)
    loss = SiameseReID.loss(out, s.label, s.label_2, s.same, weights, reduction, verification,
                            margin)
    n = s.x1.shape[0]
    with torch.no_grad():
        objs = [loss.objective, loss.objective_2, loss.objective_final]
        if reduction != "sum":
            objs = [o * n for o in objs]
        stats = torch.stack([torch.tensor(float(n), device=objs[0].device),
                             *[o.detach() for o in objs],
                             class_error(out.prediction, s.label),
                             class_error(out.prediction_2, s.label_2),
                             _verification_error(out, s.same, verification, margin)])
    return loss, stats


class Steps:
    """The iteration steps of :class:`~porting.train.trainer.Trainer` (its model, optimiser and
    recorder)."""

    def _forward(self, s: Step, weights: tuple[float, float, float], reduction: str):
        r = self.recipe
        return losses_and_stats(self.net, s, weights, reduction, r.verification,
                                r.contrastive_margin)

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
        r = self.recipe
        with torch.no_grad():
            return losses_and_stats(self.model, s, r.loss_weights, "sum", r.verification,
                                    r.contrastive_margin)
