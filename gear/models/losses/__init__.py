"""Loss modules: reconstruction, perceptual, adversarial."""
from .gan import (GANLoss, hinge_d_loss, hinge_g_loss, non_saturating_d_loss,
                  non_saturating_g_loss)
from .perceptual import LPIPS, STLPIPS
from .reconstruction import L1Loss, MSELoss

__all__ = [
    'L1Loss', 'MSELoss', 'LPIPS', 'STLPIPS', 'GANLoss', 'hinge_d_loss', 'non_saturating_d_loss',
    'hinge_g_loss', 'non_saturating_g_loss',
]
