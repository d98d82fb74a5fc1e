"""Convolutional building blocks of the taming / LlamaGen VQGAN codec.

Parameter names (``norm1``, ``conv1``, ``nin_shortcut``, ``q``/``k``/``v``/``proj_out``,
``conv``) equal those of LlamaGen's ``tokenizer/tokenizer_image/vq_model.py``, so released
checkpoints load without renaming inside a block.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.precision import autocast_channels_last


def Normalize(channels: int) -> nn.GroupNorm:  # noqa: N802  (the released name)
    """GroupNorm with 32 groups and eps 1e-6, affine, as in LlamaGen (``norm_type='group'``)."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def swish(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (SiLU)."""
    return F.silu(x)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: norm-swish-conv, norm-swish-dropout-conv, plus shortcut.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels; a 1x1 ``nin_shortcut`` is added when they differ.
        dropout (float): dropout probability before the second convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map, with a residual.

    Plain matmul + softmax (not ``scaled_dot_product_attention``) so that the result matches the
    released model to float32 rounding; attention only runs at the lowest resolution, where
    H*W is small (256 for VQ-16 at 256 px).

    Args:
        channels (int): feature channels C (also the attention width).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = Normalize(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1, stride=1, padding=0)
        self.k = nn.Conv2d(channels, channels, kernel_size=1, stride=1, padding=0)
        self.v = nn.Conv2d(channels, channels, kernel_size=1, stride=1, padding=0)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # (B, N, C)
        k = k.reshape(b, c, hh * ww)  # (B, C, N)
        v = v.reshape(b, c, hh * ww)  # (B, C, N)
        w = torch.bmm(q, k) * (int(c) ** (-0.5))  # (B, N_q, N_k)
        w = F.softmax(w, dim=2)
        h = torch.bmm(v, w.permute(0, 2, 1))  # (B, C, N_q)
        h = h.reshape(b, c, hh, ww)  # (B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Halve H and W: zero-pad right/bottom by one, then a 3x3 convolution with stride 2.

    Args:
        channels (int): input and output channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, 1, 0, 1), mode='constant', value=0)  # (B, C, H+1, W+1)
        return self.conv(x)


def _phase_taps(w: Tensor, dim: int) -> Tuple[Tensor, Tensor]:
    """The 3 taps of ``w`` along ``dim`` (offsets -1, 0, +1 on the 2x nearest-upsampled grid)
    as the 2 taps on the input grid of the even outputs (offsets -1, 0: ``w0``, ``w1 + w2``)
    and of the odd ones (offsets 0, +1: ``w0 + w1``, ``w2``)."""
    w0, w1, w2 = w.unbind(dim)
    return torch.stack([w0, w1 + w2], dim), torch.stack([w0 + w1, w2], dim)


def upsample_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``conv3x3(nearest_upsample_x2(x), weight, bias, padding=1)`` without the upsampling.

    Output pixel (2i + a, 2j + b) reads input rows i - 1 + a, i + a and columns j - 1 + b,
    j + b only, so each of the four phases (a, b) is a 2x2 convolution of the zero-padded input
    whose taps sum the 3x3 taps landing on the same input pixel; the four run as one
    convolution with 4 x C_out outputs. 16 / 36 of the direct form's multiply-adds (plus the
    (H + 1) x (W + 1) border positions), the same result to float rounding.

    Args:
        x: (B, C_in, H, W). weight: (C_out, C_in, 3, 3). bias: (C_out,).
    Returns:
        (B, C_out, 2H, 2W).
    """
    b, _, h, w = x.shape
    c_out = weight.shape[0]
    rows = _phase_taps(weight, 2)  # 2 x (C_out, C_in, 2, 3), phase a
    taps = torch.stack([torch.stack(_phase_taps(r, 3), 1) for r in rows], 1)
    # taps: (C_out, a, b, C_in, 2, 2) -> one convolution with output channel 4 c + 2 a + b
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), taps.flatten(0, 2), bias.repeat_interleave(4))
    y = y.view(b, c_out, 2, 2, h + 1, w + 1)  # (B, C_out, a, b, H + 1, W + 1)
    # phase (a, b) at (i, j) is position (i + a, j + b) of its map
    out = torch.stack([torch.stack([y[:, :, a, c, a:a + h, c:c + w] for c in (0, 1)], dim=-1)
                       for a in (0, 1)], dim=3)  # (B, C_out, H, a, W, b)
    return out.reshape(b, c_out, 2 * h, 2 * w)  # row 2i + a, column 2j + b


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour interpolation, then a 3x3 convolution.

    Computed as ``upsample_conv`` (four 2x2 convolutions of the input, interleaved): the same
    map with 16 / 36 of the multiply-adds; the parameter is the released 3x3 ``conv``.

    Args:
        channels (int): input and output channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = upsample_conv(x, self.conv.weight, self.conv.bias)  # (B, C, 2H, 2W)
        return autocast_channels_last(out)  # the decoder's layout under a CPU autocast
