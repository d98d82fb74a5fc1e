"""LlamaGen's VQGAN image tokenizer (VQ-16 / VQ-8): conv encoder, quantizer, conv decoder.

A faithful re-implementation of LlamaGen's ``tokenizer/tokenizer_image/vq_model.py`` (itself
taming-transformers' codec with attention only at the lowest resolution). Module names equal
the released ones (``encoder.*``, ``decoder.*``, ``quant_conv``, ``post_quant_conv``) except the
quantizer, which is ``quantizer`` here and ``quantize`` in the release;
``gear.models.converters.llamagen_vq`` maps between the two.

    x (B, 3, H, W) -> encoder -> (B, z_channels, h, w) -> quant_conv -> z (B, D, h, w)
      -> quantizer -> z_q (B, D, h, w) -> post_quant_conv -> decoder -> x^ (B, 3, H, W)
with h = H / 2**(len(ch_mult) - 1).
"""
from typing import Sequence, Tuple

from torch import Tensor, nn

from gear.registry import QUANTIZERS, TOKENIZERS
from ..losses.precision import autocast_channels_last
from ..quantizers.base import QuantizerOutput
from .blocks import AttnBlock, Downsample, Normalize, ResnetBlock, Upsample, swish


class Encoder(nn.Module):
    """Image -> latent: ``len(ch_mult)`` levels of residual blocks, a stride-2 downsample between
    levels, self-attention only at the last (lowest-resolution) level, then mid blocks.

    Args:
        in_channels (int): image channels.
        ch (int): base width; level i has ``ch * ch_mult[i]`` channels.
        ch_mult (Sequence[int]): width multiplier per level.
        num_res_blocks (int): residual blocks per level.
        z_channels (int): output channels.
        dropout (float): dropout inside residual blocks.
    """

    def __init__(self, in_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 2, z_channels: int = 256, dropout: float = 0.0):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)

        in_ch_mult = (1, ) + tuple(ch_mult)
        self.conv_blocks = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block = nn.Module()
            block.res, block.attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.res.append(ResnetBlock(block_in, block_out, dropout=dropout))
                block_in = block_out
                if i_level == self.num_resolutions - 1:
                    block.attn.append(AttnBlock(block_in))
            if i_level != self.num_resolutions - 1:
                block.downsample = Downsample(block_in)
            self.conv_blocks.append(block)

        self.mid = nn.ModuleList([
            ResnetBlock(block_in, block_in, dropout=dropout),
            AttnBlock(block_in),
            ResnetBlock(block_in, block_in, dropout=dropout)])
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for i_level, block in enumerate(self.conv_blocks):
            for i_block in range(self.num_res_blocks):
                h = block.res[i_block](h)
                if len(block.attn) > 0:
                    h = block.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = block.downsample(h)  # (B, C, H/2, W/2)
        for mid_block in self.mid:
            h = mid_block(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent -> image: mid blocks, then the levels in reverse order with
    ``num_res_blocks + 1`` residual blocks each, self-attention only at the first (lowest-resolution)
    decoder level, a nearest x2 upsample between levels.

    Args:
        out_channels (int): image channels.
        ch (int): base width.
        ch_mult (Sequence[int]): width multiplier per level (encoder order).
        num_res_blocks (int): residual blocks per level, minus one.
        z_channels (int): input channels.
        dropout (float): dropout inside residual blocks.
    """

    def __init__(self, out_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 2, z_channels: int = 256, dropout: float = 0.0):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = nn.ModuleList([
            ResnetBlock(block_in, block_in, dropout=dropout),
            AttnBlock(block_in),
            ResnetBlock(block_in, block_in, dropout=dropout)])

        self.conv_blocks = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block = nn.Module()
            block.res, block.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.res.append(ResnetBlock(block_in, block_out, dropout=dropout))
                block_in = block_out
                if i_level == self.num_resolutions - 1:
                    block.attn.append(AttnBlock(block_in))
            if i_level != 0:
                block.upsample = Upsample(block_in)
            self.conv_blocks.append(block)

        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, kernel_size=3, stride=1, padding=1)

    @property
    def last_layer(self) -> Tensor:
        """Weight of the last convolution (for the adaptive GAN weight)."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for mid_block in self.mid:
            h = mid_block(h)
        for i_level, block in enumerate(self.conv_blocks):
            for i_block in range(self.num_res_blocks + 1):
                h = block.res[i_block](h)
                if len(block.attn) > 0:
                    h = block.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = block.upsample(h)  # (B, C, 2H, 2W)
        return self.conv_out(swish(self.norm_out(h)))


@TOKENIZERS.register_module()
class VQTokenizer(nn.Module):
    """LlamaGen's VQGAN tokenizer; the defaults are VQ-16 (16x downsampling, 16384 x 8 codes).

    Args:
        ch (int): base width of encoder and decoder.
        ch_mult (Sequence[int]): width multiplier per level; ``len(ch_mult) - 1`` downsamplings.
            VQ-16: (1, 1, 2, 2, 4); VQ-8: (1, 2, 2, 4).
        num_res_blocks (int): residual blocks per encoder level (decoder: one more).
        z_channels (int): channels between encoder/decoder and the 1x1 quant convs.
        in_channels (int): image channels (the decoder outputs as many).
        dropout (float): dropout inside residual blocks.
        quantizer (dict): config of a quantizer from ``QUANTIZERS``; its ``embed_dim`` sets
            the width of ``quant_conv`` / ``post_quant_conv``.
    """

    def __init__(self,
                 ch: int = 128,
                 ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 2,
                 z_channels: int = 256,
                 in_channels: int = 3,
                 dropout: float = 0.0,
                 quantizer: dict = dict(type='VectorQuantizer', codebook_size=16384, embed_dim=8)):
        super().__init__()
        self.ch_mult = tuple(ch_mult)
        self.encoder = Encoder(in_channels, ch, ch_mult, num_res_blocks, z_channels, dropout)
        self.decoder = Decoder(in_channels, ch, ch_mult, num_res_blocks, z_channels, dropout)
        self.quantizer = QUANTIZERS.build(quantizer)
        embed_dim = self.quantizer.embed_dim
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, kernel_size=1)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def downsample_factor(self) -> int:
        return 2**(len(self.ch_mult) - 1)

    def encode_features(self, x: Tensor) -> Tensor:
        """Continuous latent before quantisation: x (B, 3, H, W) -> z (B, D, h, w).
        Under a CPU autocast the convolutions run channels-last (``autocast_channels_last``)."""
        return self.quant_conv(self.encoder(autocast_channels_last(x)))

    def encode(self, x: Tensor) -> QuantizerOutput:
        """x in [-1, 1] (B, 3, H, W) -> quantizer output on the (h, w) token grid."""
        return self.quantizer(self.encode_features(x))

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (B, D, h, w) -> reconstruction x^ (B, 3, H, W)."""
        z_q = z_q.to(self.post_quant_conv.weight.dtype)  # the quantizer works in float32
        return self.decoder(self.post_quant_conv(autocast_channels_last(z_q)))

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (B, h, w) -> reconstruction x^ (B, 3, H, W)."""
        return self.decode(self.quantizer.embed(indices))

    def forward(self, x: Tensor) -> Tuple[Tensor, QuantizerOutput]:
        """x (B, 3, H, W) -> (x^ (B, 3, H, W), quantizer output)."""
        q = self.encode(x)
        return self.decode(q.z_q), q
