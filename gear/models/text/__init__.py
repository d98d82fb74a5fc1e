"""Frozen text encoders for text-to-image conditioning (TEXT_ENCODERS): HF ``transformers``
models (T5, Qwen3), an on-disk cache of their caption embeddings, and tiny offline encoders for
tests and the CPU demo."""
from .embedding_cache import TextEmbeddingCache, caption_key
from .hf_encoder import HFTextEncoder
from .tiny import write_tiny_text_encoder

__all__ = ['HFTextEncoder', 'TextEmbeddingCache', 'caption_key', 'write_tiny_text_encoder']
