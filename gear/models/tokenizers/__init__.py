"""Image tokenizers: ``encode(x) -> QuantizerOutput``, ``decode(z_q) -> x^``."""
from .blocks import AttnBlock, Downsample, Normalize, ResnetBlock, Upsample, swish  # noqa: F401
from .ibq import IBQTokenizer, TamingDecoder, TamingEncoder  # noqa: F401
from .vqgan import Decoder, Encoder, VQTokenizer  # noqa: F401
from .magvit2 import LFQTokenizer, MagvitDecoder, MagvitEncoder  # noqa: F401
from .magvit2_blocks import AdaptiveGroupNorm, MagvitResBlock, MagvitUpsample  # noqa: F401
