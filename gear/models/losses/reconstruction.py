"""Pixel reconstruction losses of the tokenizer: L1 and MSE, each scaled by ``loss_weight``."""
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import LOSSES


class _PixelLoss(nn.Module):
    """``loss_weight * mean(fn(pred, target))`` for a torch functional loss ``fn``."""
    fn = None

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: same shape, e.g. (B, 3, H, W) -> scalar."""
        return self.loss_weight * type(self).fn(pred, target, reduction='mean')

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'


@LOSSES.register_module()
class L1Loss(_PixelLoss):
    """Mean absolute error, ``loss_weight * mean(|pred - target|)``.

    Args:
        loss_weight: factor applied to the mean.
    """
    fn = F.l1_loss


@LOSSES.register_module()
class MSELoss(_PixelLoss):
    """Mean squared error, ``loss_weight * mean((pred - target) ** 2)``.

    Args:
        loss_weight: factor applied to the mean.
    """
    fn = F.mse_loss
