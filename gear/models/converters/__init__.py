"""Converters from released checkpoints (LlamaGen, Open-MAGVIT2, IBQ, GEAR) to gear's state dicts:
pure functions.

The command-line front ends live in ``tools/model_converters/``.
"""
from .ibq import IBQ16_ARCH, convert_ibq, holds_ibq, infer_ibq_arch, to_released_ibq  # noqa: F401
from .llamagen_vq import (VQ8_ARCH, VQ16_ARCH, convert_llamagen_vq, infer_arch,  # noqa: F401
                          select_state_dict, to_llamagen_vq)
from .llamagen_gpt import (GPT_ARCHS, convert_llamagen_gpt, gpt_arch_from_llamagen,  # noqa: F401
                           to_llamagen_gpt)
from .tokenizers import (checkpoint_family, convert_tokenizer, family_of,  # noqa: F401
                         infer_tokenizer_arch)
from .open_magvit2 import convert_lfq, holds_lfq, infer_lfq_arch, to_released_lfq  # noqa: F401
