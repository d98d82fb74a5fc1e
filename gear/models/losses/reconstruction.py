"""Pixel reconstruction losses of the tokenizer: L1 and MSE, each scaled by ``loss_weight``."""
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import LOSSES
from .precision import fp32_region


class _PixelLoss(nn.Module):
    """``loss_weight * mean(fn(pred, target))`` for a torch functional loss ``fn``; in float32
    unless ``fp32=False`` (the mean of a 256 px image in bf16 keeps ~3 significant digits)."""
    fn = None

    def __init__(self, loss_weight: float = 1.0, fp32: bool = True):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.fp32 = bool(fp32)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: same shape, e.g. (B, 3, H, W) -> scalar."""
        with fp32_region(pred, target, enabled=self.fp32) as (pred, target):
            return self.loss_weight * type(self).fn(pred, target, reduction='mean')

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, fp32={self.fp32}'


@LOSSES.register_module()
class L1Loss(_PixelLoss):
    """Mean absolute error, ``loss_weight * mean(|pred - target|)``.

    Args:
        loss_weight: factor applied to the mean.
        fp32: compute in float32 under autocast (default True).
    """
    fn = F.l1_loss


@LOSSES.register_module()
class MSELoss(_PixelLoss):
    """Mean squared error, ``loss_weight * mean((pred - target) ** 2)``.

    Args:
        loss_weight: factor applied to the mean.
        fp32: compute in float32 under autocast (default True).
    """
    fn = F.mse_loss
