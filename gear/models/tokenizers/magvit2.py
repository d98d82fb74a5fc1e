"""Open-MAGVIT2's LFQ image tokenizer (LFQ-16, the GEAR-LFQ / Warmup-LFQ codec).

A re-implementation of Open-MAGVIT2's ``improved_model.Encoder`` / ``Decoder`` with the
lookup-free quantizer between them. There are no quant convs: the encoder outputs exactly the
k = log2(K) channels the quantizer binarises. Module names equal the released ones
(``encoder.*``, ``decoder.*``); the quantizer (``quantizer``, ``quantize`` in the release) has
no parameters, so a state dict holds codec keys only
(``gear.models.converters.open_magvit2`` reads the released checkpoints).

    x (B, 3, H, W) -> encoder -> z (B, k, h, w) -> quantizer -> z_q (B, k, h, w)
      -> decoder (its adaptive norms conditioned on z_q) -> x^ (B, 3, H, W)
with h = H / 2**(len(ch_mult) - 1).
"""
from typing import Optional, Sequence, Tuple

from torch import Tensor, nn

from gear.registry import QUANTIZERS, TOKENIZERS
from ..quantizers.base import QuantizerOutput
from .blocks import Normalize, swish
from .magvit2_blocks import AdaptiveGroupNorm, MagvitResBlock, MagvitUpsample


class MagvitEncoder(nn.Module):
    """Image -> latent: ``len(ch_mult)`` levels of residual blocks (``down.{i}.block.{j}``), a
    stride-2 3x3 convolution between levels, ``num_res_blocks`` mid blocks, norm, swish, 1x1 out.

    Args:
        in_channels (int): image channels.
        ch (int): base width; level i has ``ch * ch_mult[i]`` channels.
        ch_mult (Sequence[int]): width multiplier per level.
        num_res_blocks (int): residual blocks per level, and mid blocks.
        z_channels (int): output channels (the quantizer's bits).
    """

    def __init__(self, in_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4, z_channels: int = 14):
        super().__init__()
        self.num_levels = len(ch_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, padding=1, bias=False)
        in_ch_mult = (1, ) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_levels):
            level = nn.Module()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(MagvitResBlock(block_in, block_out))
                block_in = block_out
            if i_level < self.num_levels - 1:
                level.downsample = nn.Conv2d(block_out, block_out, kernel_size=3, stride=2, padding=1)
            self.down.append(level)
        self.mid_block = nn.ModuleList(MagvitResBlock(block_in, block_in)
                                       for _ in range(num_res_blocks))
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for i_level, level in enumerate(self.down):
            for block in level.block:
                h = block(h)
            if i_level < self.num_levels - 1:
                h = level.downsample(h)  # (B, C, H/2, W/2)
        for block in self.mid_block:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))  # (B, z_channels, h, w)


class MagvitDecoder(nn.Module):
    """Latent -> image: 3x3 in, mid blocks, then the levels from the lowest resolution up; level
    i applies ``adaptive.{i}`` (conditioned on the decoder's input latent), ``num_res_blocks``
    residual blocks ``up.{i}.block.{j}`` and, for i > 0, ``up.{i}.upsample`` (depth-to-space).

    Args:
        out_channels (int): image channels.
        ch (int): base width.
        ch_mult (Sequence[int]): width multiplier per level (encoder order).
        num_res_blocks (int): residual blocks per level, and mid blocks.
        z_channels (int): input channels.
    """

    def __init__(self, out_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4, z_channels: int = 14):
        super().__init__()
        self.num_levels = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, padding=1)
        self.mid_block = nn.ModuleList(MagvitResBlock(block_in, block_in)
                                       for _ in range(num_res_blocks))
        up, adaptive = [], []  # built from the lowest resolution up, stored by level index
        for i_level in reversed(range(self.num_levels)):
            adaptive.insert(0, AdaptiveGroupNorm(z_channels, block_in))
            level = nn.Module()
            block_out = ch * ch_mult[i_level]
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(MagvitResBlock(block_in, block_out))
                block_in = block_out
            if i_level > 0:
                level.upsample = MagvitUpsample(block_in)
            up.insert(0, level)
        self.up = nn.ModuleList(up)
        self.adaptive = nn.ModuleList(adaptive)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, kernel_size=3, padding=1)

    @property
    def last_layer(self) -> Tensor:
        """Weight of the last convolution (for the adaptive GAN weight)."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid_block:
            h = block(h)
        for i_level in reversed(range(self.num_levels)):
            h = self.adaptive[i_level](h, z)
            for block in self.up[i_level].block:
                h = block(h)
            if i_level > 0:
                h = self.up[i_level].upsample(h)  # (B, C, 2H, 2W)
        return self.conv_out(swish(self.norm_out(h)))  # (B, 3, H, W)


@TOKENIZERS.register_module()
class LFQTokenizer(nn.Module):
    """Open-MAGVIT2's tokenizer; the defaults are LFQ-16 (16x downsampling, K = 2**14).

    Args:
        ch (int): base width of encoder and decoder.
        ch_mult (Sequence[int]): width multiplier per level; ``len(ch_mult) - 1`` downsamplings.
        num_res_blocks (int): residual blocks per level (encoder and decoder) and mid blocks.
        z_channels (int): latent channels k; the codebook is {-1, +1}^k.
        in_channels (int): image channels (the decoder outputs as many).
        quantizer (dict): config of a quantizer from ``QUANTIZERS``; its ``codebook_size``
            must be ``2**z_channels``.
    """

    def __init__(self,
                 ch: int = 128,
                 ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4,
                 z_channels: int = 14,
                 in_channels: int = 3,
                 quantizer: dict = dict(type='LookupFreeQuantizer', codebook_size=2**14)):
        super().__init__()
        error = self.config_error(z_channels=z_channels, quantizer=quantizer)
        if error:
            raise ValueError(f'model.tokenizer.{error}')
        self.quantizer = QUANTIZERS.build(quantizer)
        self.ch_mult = tuple(ch_mult)
        self.encoder = MagvitEncoder(in_channels, ch, ch_mult, num_res_blocks, z_channels)
        self.decoder = MagvitDecoder(in_channels, ch, ch_mult, num_res_blocks, z_channels)

    @staticmethod
    def config_error(z_channels: int = 14, quantizer: Optional[dict] = None, **_) -> Optional[str]:
        """What is wrong with this config (the key, relative to the tokenizer, first), or None.

        The codec feeds its latent to the quantizer directly (no ``quant_conv``): a lookup-free
        quantizer needs ``codebook_size == 2**z_channels``, any other one ``embed_dim ==
        z_channels``. ``gear.engine.config_check`` calls this before anything is built.
        """
        quantizer = quantizer or {}
        if quantizer.get('type') == 'LookupFreeQuantizer':
            size = quantizer.get('codebook_size', 2**14)
            if size != 2**z_channels:
                return (f'quantizer.codebook_size: {size} is not 2**z_channels = 2**{z_channels} = '
                        f'{2**z_channels}; an LFQ codebook is {{-1, +1}}^z_channels')
        elif quantizer.get('embed_dim', z_channels) != z_channels:
            return (f"quantizer.embed_dim: {quantizer['embed_dim']} != z_channels = {z_channels}; "
                    'the LFQ codec has no quant_conv, the quantizer reads its latent directly')
        return None

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def downsample_factor(self) -> int:
        return 2**(len(self.ch_mult) - 1)

    def encode_features(self, x: Tensor) -> Tensor:
        """Continuous latent before quantisation: x (B, 3, H, W) -> z (B, k, h, w)."""
        return self.encoder(x)

    def encode(self, x: Tensor) -> QuantizerOutput:
        """x in [-1, 1] (B, 3, H, W) -> quantizer output on the (h, w) token grid."""
        return self.quantizer(self.encode_features(x))

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (B, k, h, w) -> reconstruction x^ (B, 3, H, W)."""
        z_q = z_q.to(self.decoder.conv_in.weight.dtype)  # the quantizer works in float32
        return self.decoder(z_q)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (B, h, w) -> reconstruction x^ (B, 3, H, W)."""
        return self.decode(self.quantizer.embed(indices))

    def forward(self, x: Tensor) -> Tuple[Tensor, QuantizerOutput]:
        """x (B, 3, H, W) -> (x^ (B, 3, H, W), quantizer output)."""
        q = self.encode(x)
        return self.decode(q.z_q), q
