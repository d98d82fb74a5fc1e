"""Vector quantizers (VQ, LFQ, IBQ): ``forward(z) -> QuantizerOutput``."""
from .base import QuantizerOutput, code_usage_metrics, entropy_regularizer  # noqa: F401
from .index_backprop import IndexBackpropQuantizer  # noqa: F401
from .vector_quantizer import VectorQuantizer  # noqa: F401
from .lookup_free import LookupFreeQuantizer, lfq_entropy  # noqa: F401
