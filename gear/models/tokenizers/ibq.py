"""IBQ's image tokenizer (TencentARC SEED-Voken ``IBQ``): the taming / LDM codec around an
index-backpropagation quantizer.

A re-implementation of ``src/IBQ/modules/diffusionmodules/model.py`` (``Encoder`` / ``Decoder``
with ``temb_channels=0`` and ``double_z=False``) and of ``src/IBQ/models/ibqgan.py``. It differs
from LlamaGen's VQGAN (``vqgan.py``) in where attention sits and in the module names, which
equal the released ones (``encoder.down.{i}.block.{j}``, ``encoder.down.{i}.attn.{j}``,
``encoder.mid.block_1 / attn_1 / block_2``, ``decoder.up.{i}...``, ``quant_conv``,
``post_quant_conv``) except the quantizer: ``quantizer`` here, ``quantize`` in the release;
``gear.models.converters.ibq`` maps between the two. The blocks (``ResnetBlock``,
``AttnBlock``, ``Downsample``, ``Upsample``) are taming's and shared with ``vqgan.py``.

    x (B, 3, H, W) -> encoder -> (B, z_channels, h, w) -> quant_conv -> z (B, D, h, w)
      -> quantizer -> z_q (B, D, h, w) -> post_quant_conv -> decoder -> x^ (B, 3, H, W)
with h = H / 2**(len(ch_mult) - 1). Level i works at ``resolution / 2**i`` pixels; attention
follows every residual block of the levels whose resolution is in ``attn_resolutions``
(IBQ-16: level 4, 16 x 16), and always in the middle.
"""
from typing import Optional, Sequence, Tuple

from torch import Tensor, nn

from gear.registry import QUANTIZERS, TOKENIZERS
from ..quantizers.base import QuantizerOutput
from .blocks import AttnBlock, Downsample, Normalize, ResnetBlock, Upsample, swish


def _mid(channels: int, dropout: float) -> nn.Module:
    """taming's middle: ``block_1`` - ``attn_1`` - ``block_2`` at the lowest resolution."""
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout=dropout)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels, dropout=dropout)
    return mid


def _level(block_in: int, block_out: int, num_blocks: int, attention: bool,
           dropout: float) -> nn.Module:
    """One resolution level: ``block`` (residual blocks) and ``attn`` (one per block, or none)."""
    level = nn.Module()
    level.block, level.attn = nn.ModuleList(), nn.ModuleList()
    for _ in range(num_blocks):
        level.block.append(ResnetBlock(block_in, block_out, dropout=dropout))
        block_in = block_out
        if attention:
            level.attn.append(AttnBlock(block_out))
    return level


def _run_level(level: nn.Module, h: Tensor) -> Tensor:
    for i_block, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[i_block](h)
    return h


def _run_mid(mid: nn.Module, h: Tensor) -> Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class TamingEncoder(nn.Module):
    """Image -> latent: ``len(ch_mult)`` levels of ``num_res_blocks`` residual blocks (attention
    after each at the levels in ``attn_resolutions``), a stride-2 downsample between levels,
    the middle, then norm-swish-conv to ``z_channels``.

    Args:
        in_channels (int): image channels.
        ch (int): base width; level i has ``ch * ch_mult[i]`` channels.
        ch_mult (Sequence[int]): width multiplier per level.
        num_res_blocks (int): residual blocks per level.
        attn_resolutions (Sequence[int]): resolutions (pixels) whose levels get attention.
        resolution (int): image size; level i works at ``resolution // 2**i``.
        z_channels (int): output channels.
        dropout (float): dropout inside residual blocks.
    """

    def __init__(self, in_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4, attn_resolutions: Sequence[int] = (16, ),
                 resolution: int = 256, z_channels: int = 256, dropout: float = 0.0):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        in_ch_mult = (1, ) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            attention = resolution // 2**i_level in attn_resolutions
            level = _level(block_in, block_out, num_res_blocks, attention, dropout)
            if i_level != self.num_resolutions - 1:
                level.downsample = Downsample(block_out)
            self.down.append(level)
        self.mid = _mid(block_out, dropout)
        self.norm_out = Normalize(block_out)
        self.conv_out = nn.Conv2d(block_out, z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for i_level, level in enumerate(self.down):
            h = _run_level(level, h)
            if i_level != self.num_resolutions - 1:
                h = level.downsample(h)  # (B, C, H/2, W/2)
        h = _run_mid(self.mid, h)
        return self.conv_out(swish(self.norm_out(h)))


class TamingDecoder(nn.Module):
    """Latent -> image: conv to the lowest-level width, the middle, then the levels from the
    lowest resolution up, ``num_res_blocks + 1`` residual blocks each (attention after each at
    the levels in ``attn_resolutions``), a nearest x2 upsample between levels.

    ``up`` is stored in encoder-level order, as released: ``up[0]`` is the highest resolution
    and runs last.

    Args:
        out_channels (int): image channels.
        ch (int): base width.
        ch_mult (Sequence[int]): width multiplier per level (encoder order).
        num_res_blocks (int): residual blocks per level, minus one.
        attn_resolutions (Sequence[int]): resolutions (pixels) whose levels get attention.
        resolution (int): image size; level i works at ``resolution // 2**i``.
        z_channels (int): input channels.
        dropout (float): dropout inside residual blocks.
    """

    def __init__(self, out_channels: int = 3, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4, attn_resolutions: Sequence[int] = (16, ),
                 resolution: int = 256, z_channels: int = 256, dropout: float = 0.0):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = _mid(block_in, dropout)
        up = []
        for i_level in reversed(range(self.num_resolutions)):
            block_out = ch * ch_mult[i_level]
            attention = resolution // 2**i_level in attn_resolutions
            level = _level(block_in, block_out, num_res_blocks + 1, attention, dropout)
            block_in = block_out
            if i_level != 0:
                level.upsample = Upsample(block_out)
            up.insert(0, level)  # encoder-level order: up[0] is the highest resolution
        self.up = nn.ModuleList(up)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, kernel_size=3, stride=1, padding=1)

    @property
    def last_layer(self) -> Tensor:
        """Weight of the last convolution (for the adaptive GAN weight)."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for i_level in reversed(range(self.num_resolutions)):
            h = _run_level(self.up[i_level], h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)  # (B, C, 2H, 2W)
        return self.conv_out(swish(self.norm_out(h)))


@TOKENIZERS.register_module()
class IBQTokenizer(nn.Module):
    """IBQ's tokenizer; the defaults are IBQ-16 (16x downsampling, 16384 x 256 codes, 111M
    parameters), the architecture of the GEAR-IBQ / Warmup-IBQ releases.

    Args:
        ch (int): base width of encoder and decoder.
        ch_mult (Sequence[int]): width multiplier per level; ``len(ch_mult) - 1`` downsamplings.
        num_res_blocks (int): residual blocks per encoder level (decoder: one more).
        attn_resolutions (Sequence[int]): resolutions (pixels) whose levels get attention.
        resolution (int): the image size the model is built for; used only to place the
            attention (level i works at ``resolution // 2**i``), any multiple of the
            downsampling factor can be encoded.
        z_channels (int): channels between encoder/decoder and the 1x1 quant convs.
        in_channels (int): image channels (the decoder outputs as many).
        dropout (float): dropout inside residual blocks.
        quantizer (dict): config of a quantizer from ``QUANTIZERS``; its ``embed_dim`` sets
            the width of ``quant_conv`` / ``post_quant_conv``.
    """

    def __init__(self,
                 ch: int = 128,
                 ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 4,
                 attn_resolutions: Sequence[int] = (16, ),
                 resolution: int = 256,
                 z_channels: int = 256,
                 in_channels: int = 3,
                 dropout: float = 0.0,
                 quantizer: dict = dict(type='IndexBackpropQuantizer', codebook_size=16384,
                                        embed_dim=256)):
        super().__init__()
        error = self.config_error(ch_mult=ch_mult, attn_resolutions=attn_resolutions,
                                  resolution=resolution)
        if error:
            raise ValueError(f'model.tokenizer.{error}')
        self.ch_mult = tuple(ch_mult)
        codec = dict(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                     attn_resolutions=tuple(attn_resolutions), resolution=resolution,
                     z_channels=z_channels, dropout=dropout)
        self.encoder = TamingEncoder(in_channels, **codec)
        self.decoder = TamingDecoder(in_channels, **codec)
        self.quantizer = QUANTIZERS.build(quantizer)
        embed_dim = self.quantizer.embed_dim
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, kernel_size=1)

    @staticmethod
    def config_error(ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                     attn_resolutions: Sequence[int] = (16, ), resolution: int = 256,
                     **_) -> Optional[str]:
        """What is wrong with this config (the key, relative to the tokenizer, first), or None:
        an attention resolution that no level works at would silently build no attention.
        ``gear.engine.config_check`` calls this before anything is built."""
        levels = [resolution // 2**i for i in range(len(ch_mult))]
        missing = [r for r in attn_resolutions if r not in levels]
        if missing:
            return (f'attn_resolutions: {missing} is not a level of this codec; with resolution '
                    f'{resolution} and {len(ch_mult)} levels they work at {levels} px')
        return None

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def downsample_factor(self) -> int:
        return 2**(len(self.ch_mult) - 1)

    def encode_features(self, x: Tensor) -> Tensor:
        """Continuous latent before quantisation: x (B, 3, H, W) -> z (B, D, h, w)."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> QuantizerOutput:
        """x in [-1, 1] (B, 3, H, W) -> quantizer output on the (h, w) token grid."""
        return self.quantizer(self.encode_features(x))

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (B, D, h, w) -> reconstruction x^ (B, 3, H, W)."""
        z_q = z_q.to(self.post_quant_conv.weight.dtype)  # the quantizer works in float32
        return self.decoder(self.post_quant_conv(z_q))

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (B, h, w) -> reconstruction x^ (B, 3, H, W)."""
        return self.decode(self.quantizer.embed(indices))

    def forward(self, x: Tensor) -> Tuple[Tensor, QuantizerOutput]:
        """x (B, 3, H, W) -> (x^ (B, 3, H, W), quantizer output)."""
        q = self.encode(x)
        return self.decode(q.z_q), q
