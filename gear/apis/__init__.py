"""gear's public API: load what was trained or released, sample from it, evaluate it.

    import gear.apis as G
    tokenizer = G.load_tokenizer('work_dirs/gear_vq_tiny_fashionmnist/final.pth')
    model = G.load_generator('work_dirs/pipeline_gear_vq_tiny_fashionmnist/stage2_vqonly/final.pth')
    images = G.sample(model, labels=[0, 1, 2], cfg_scale=2.0, seed=0)   # uint8 (3, H, W, 3)
    results = G.evaluate('.../final.pth', per_class=10)                  # dict of metrics

``load_model`` rebuilds any stage model; ``load_tokenizer`` and ``load_generator`` also take
model-zoo names (``G.load_tokenizer("gear-vq16")``, ``G.load_generator("llamagen-c2i-l")``;
model_zoo.md), downloaded, verified, converted and cached (``gear.apis.zoo``).
"""
from typing import Sequence, Union

import torch
from torch import Tensor, nn

from gear.evaluation.sampling import SamplingSettings, sample_images

from .evaluate import evaluate_checkpoint as evaluate
from .loading import load_generator, load_model, load_tokenizer
from .publish import publish_model


def sample(model: nn.Module, labels: Union[Sequence[int], Tensor], **settings) -> Tensor:
    """One image per class label -> uint8 (N, H, W, 3) on the CPU.

    Args:
        model: a GEAR or FrozenTokenizerAR model (``load_generator``); sampling runs on its device.
        labels: (N,) class labels.
        **settings: ``SamplingSettings`` fields (cfg_scale, temperature, top_k, top_p, seed,
            batch_size, use_ema, use_cache).
    """
    device = next(model.parameters()).device
    return sample_images(model, torch.as_tensor(labels, dtype=torch.long), SamplingSettings(**settings),
                         device=device)


__all__ = ['SamplingSettings', 'evaluate', 'load_generator', 'load_model', 'load_tokenizer',
           'publish_model', 'sample']
