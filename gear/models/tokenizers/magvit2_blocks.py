"""Building blocks of Open-MAGVIT2's codec (``Open_MAGVIT2/modules/diffusionmodules/improved_model.py``).

Parameter names (``norm1``, ``conv1``, ``nin_shortcut``, ``upsample.conv1``, ``gamma``/``beta``)
equal the released ones, so Open-MAGVIT2 and GEAR-LFQ checkpoints load without renaming inside
a block. Unlike the taming blocks (``blocks.py``) the residual convolutions have no bias and
there is no dropout.
"""
from torch import Tensor, nn

from .blocks import Normalize, swish


class MagvitResBlock(nn.Module):
    """Residual block: norm-swish-conv3x3, norm-swish-conv3x3 (no biases), plus shortcut.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels; a bias-free 1x1 ``nin_shortcut`` is added when
            they differ.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm2 = Normalize(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


def depth_to_space(x: Tensor, block_size: int) -> Tensor:
    """(B, C * s * s, H, W) -> (B, C, H * s, W * s) in DCR (depth-column-row) order."""
    b, c, h, w = x.shape
    s = block_size
    x = x.reshape(b, s, s, c // (s * s), h, w)  # (B, s_row, s_col, C', H, W)
    x = x.permute(0, 3, 4, 1, 5, 2)  # (B, C', H, s_row, W, s_col)
    return x.reshape(b, c // (s * s), h * s, w * s)  # (B, C', H*s, W*s)


class MagvitUpsample(nn.Module):
    """Double H and W: a 3x3 convolution to 4C channels, then depth-to-space (block 2).

    Args:
        channels (int): input and output channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * 4, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.conv1(x), block_size=2)  # (B, C, 2H, 2W)


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm (no affine) whose scale and shift are predicted from a conditioning latent.

    ``scale = gamma(sqrt(var_hw(z) + eps))`` and ``shift = beta(mean_hw(z))``, per sample and
    channel, where z is the decoder's input latent. The variance is the unbiased one (divided
    by h*w - 1): the release calls ``Tensor.var(dim=-1)``, whose default is unbiased, although
    its comment says "not unbias"; the golden fixture confirms the unbiased form.

    Args:
        z_channels (int): channels of the conditioning latent.
        channels (int): channels of the normalised features.
        eps (float): GroupNorm epsilon, also added to the variance of z.
    """

    def __init__(self, z_channels: int, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gn = nn.GroupNorm(num_groups=32, num_channels=channels, eps=eps, affine=False)
        self.gamma = nn.Linear(z_channels, channels)
        self.beta = nn.Linear(z_channels, channels)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        b, c = x.shape[:2]
        z = z.flatten(2)  # (B, Cz, h*w)
        scale = self.gamma((z.var(dim=-1, unbiased=True) + self.eps).sqrt())  # (B, C)
        shift = self.beta(z.mean(dim=-1))  # (B, C)
        return self.gn(x) * scale.reshape(b, c, 1, 1) + shift.reshape(b, c, 1, 1)
