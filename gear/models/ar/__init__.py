"""AR backbones (LlamaGen GPT) and KV-cache sampling; importing registers them in AR_BACKBONES."""
from .base import ARBackboneOutput
from .sampling import generate, sample_logits, top_k_top_p_filtering
from .llamagen_gpt import GPT_SIZES, LlamaGenGPT

__all__ = ['ARBackboneOutput', 'GPT_SIZES', 'LlamaGenGPT', 'generate', 'sample_logits',
           'top_k_top_p_filtering']
