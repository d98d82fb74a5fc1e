"""A tiny text encoder written offline: a real ``transformers`` model with random weights and a
tokenizer trained on a given corpus, saved like a hub checkpoint.

Offline tests and the CPU demo load it through :class:`HFTextEncoder` exactly as they would load
``google/flan-t5-xl`` or ``Qwen/Qwen3-1.7B``: ``AutoConfig`` / ``AutoTokenizer`` /
``from_pretrained`` on a local directory, no download. The random weights know no language, but
captions with different words still get different embeddings, which is all the demo needs.

- ``family='t5'``: ``T5EncoderModel`` (gated-GELU feed-forward, as flan-t5), a word-level
  tokenizer that appends ``</s>``; ids ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, as T5's.
- ``family='qwen3'``: ``Qwen3Model`` (``Qwen2Model`` where transformers has no Qwen3), a
  word-level tokenizer with ``<|endoftext|>`` as eos and no pad token (as a causal LM's
  tokenizer often has none; the encoder then pads with eos).

Both tokenizers lowercase and split on whitespace and punctuation. The vocabulary is the
corpus's words, most frequent first, ties alphabetical: the same corpus and seed give the same
files on every run.
"""
import collections
import os
from typing import Sequence

import torch

T5_SPECIALS = ('<pad>', '</s>', '<unk>')  # ids 0, 1, 2 as in T5's sentencepiece vocabulary
QWEN_SPECIALS = ('<|endoftext|>', '<unk>')


def _word_vocab(corpus: Sequence[str], specials: Sequence[str], normalizer, pre_tokenizer) -> dict:
    """specials first, then the corpus's words by (-count, word): deterministic."""
    counts = collections.Counter()
    for text in corpus:
        words = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        counts.update(w for w, _ in words)
    words = sorted((w for w in counts if w not in specials), key=lambda w: (-counts[w], w))
    return {tok: i for i, tok in enumerate(list(specials) + words)}


def _tokenizer(family: str, corpus: Sequence[str]):
    """A ``PreTrainedTokenizerFast`` over a word-level ``tokenizers`` model of ``corpus``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    specials = T5_SPECIALS if family == 't5' else QWEN_SPECIALS
    vocab = _word_vocab(corpus, specials, normalizer, pre_tokenizer)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token='<unk>'))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    if family == 't5':  # T5 ends every sequence with </s>; the causal family adds nothing
        tok.post_processor = processors.TemplateProcessing(
            single='$A </s>', pair='$A </s> $B </s>', special_tokens=[('</s>', vocab['</s>'])])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='<pad>', eos_token='</s>',
                                       unk_token='<unk>')
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token='<|endoftext|>',
                                   unk_token='<unk>')


def _model(family: str, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int):
    """A randomly initialised ``T5EncoderModel`` or ``Qwen3Model`` (``Qwen2Model``)."""
    import transformers

    head_dim = hidden_size // num_heads
    if family == 't5':
        config = transformers.T5Config(
            vocab_size=vocab_size, d_model=hidden_size, d_kv=head_dim, d_ff=2 * hidden_size,
            num_layers=num_layers, num_heads=num_heads, relative_attention_num_buckets=8,
            relative_attention_max_distance=32, dropout_rate=0.0, feed_forward_proj='gated-gelu',
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=True)
        return transformers.T5EncoderModel(config)
    name = 'Qwen3' if hasattr(transformers, 'Qwen3Model') else 'Qwen2'
    config = getattr(transformers, f'{name}Config')(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        head_dim=head_dim, max_position_embeddings=512, eos_token_id=0, bos_token_id=0,
        tie_word_embeddings=True, attention_dropout=0.0)
    return getattr(transformers, f'{name}Model')(config)


def write_tiny_text_encoder(out_dir: str, family: str = 't5', corpus: Sequence[str] = (),
                            hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2,
                            seed: int = 0) -> str:
    """Write a tiny text encoder (model + tokenizer) to ``out_dir``; returns ``out_dir``.

    Args:
        out_dir: the directory to write (created; existing files of the same names replaced).
        family: ``'t5'`` or ``'qwen3'``.
        corpus: the texts the tokenizer's vocabulary is built from; words outside it map to
            ``<unk>``.
        hidden_size: the model width (the embedding's C); a multiple of ``num_heads``.
        num_layers: transformer blocks.
        num_heads: attention heads.
        seed: seeds the random weights (the global RNG is left as it was).
    """
    if family not in ('t5', 'qwen3'):
        raise ValueError(f"family must be 't5' or 'qwen3', got {family!r}")
    if hidden_size % num_heads:
        raise ValueError(f'hidden_size {hidden_size} is not a multiple of num_heads {num_heads}')
    tokenizer = _tokenizer(family, list(corpus))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(family, len(tokenizer), hidden_size, num_layers, num_heads)
    os.makedirs(out_dir, exist_ok=True)
    model.eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)
