"""PatchGAN discriminator (taming-transformers' ``NLayerDiscriminator``).

Layout for ``num_layers = n`` and ``base_channels = c``::

    Conv4x4 s2 (3 -> c) + LeakyReLU(0.2)
    n - 1 x [Conv4x4 s2 (c*m_prev -> c*m), m = min(2**k, 8)] + norm + LeakyReLU(0.2)
    Conv4x4 s1 (c*m_prev -> c*min(2**n, 8)) + norm + LeakyReLU(0.2)
    Conv4x4 s1 (-> 1)                                    (patch logits)

All convolutions use padding 1; a convolution followed by a norm has no bias. A 256 px input
gives (B, 1, 30, 30) logits with the default config (n = 3).
"""
from torch import Tensor, nn

from gear.registry import DISCRIMINATORS
from ..losses.precision import autocast_channels_last


def _init_weights(module: nn.Module) -> None:
    """taming's ``weights_init``: conv weights ~ N(0, 0.02); norm weights ~ N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.constant_(module.bias, 0.0)


@DISCRIMINATORS.register_module()
class PatchGANDiscriminator(nn.Module):
    """Fully convolutional patch discriminator; outputs one logit per receptive-field patch.

    Args:
        in_channels: channels of the input image.
        base_channels: channels of the first convolution (``ndf``).
        num_layers: number of stride-2 convolutions (``n_layers``).
        norm: ``'batch'`` (BatchNorm2d, as in taming) or ``'none'``.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3,
                 norm: str = 'batch'):
        super().__init__()
        if norm not in ('batch', 'none'):
            raise ValueError(f'PatchGANDiscriminator: unknown norm {norm!r}; '
                             f"allowed: ['batch', 'none']")
        if num_layers < 1:
            raise ValueError(f'PatchGANDiscriminator: num_layers must be >= 1, got {num_layers}')
        use_norm = norm == 'batch'
        kw, padw = 4, 1

        def block(c_in: int, c_out: int, stride: int) -> list:
            layers = [nn.Conv2d(c_in, c_out, kw, stride=stride, padding=padw, bias=not use_norm)]
            if use_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
            return layers

        layers = [nn.Conv2d(in_channels, base_channels, kw, stride=2, padding=padw),
                  nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, num_layers):
            mult_prev, mult = mult, min(2 ** n, 8)
            layers += block(base_channels * mult_prev, base_channels * mult, stride=2)
        mult_prev, mult = mult, min(2 ** num_layers, 8)
        layers += block(base_channels * mult_prev, base_channels * mult, stride=1)
        layers.append(nn.Conv2d(base_channels * mult, 1, kw, stride=1, padding=padw))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) in [-1, 1] -> (B, 1, h, w) logits (channels-last under a CPU
        autocast: ``autocast_channels_last``)."""
        return self.main(autocast_channels_last(x))
