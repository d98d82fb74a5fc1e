"""Stage 2 / baseline from pre-extracted codes: one training step equals the online step.

The shipped tiny codes config (tiny VQ tokenizer from a weights file, tiny GPT, the offline
EfficientNet-Lite0 teacher at 128 px), eight real Fashion-MNIST train images. The same model
(one copy per path, same initial weights, same RNG) takes one step on the images, encoded
online, and one on their codes (``CodesDataset``, view ``orig``): the losses, the gradients of
every prior parameter and the weights after the step (live and EMA) agree to fp32 tolerance.

Augmentation is not part of this comparison, by design: the online Fashion-MNIST pipeline has no
flip or crop, while codes also hold each image's horizontal flip (or, with ``--ten-crop``, ten
crops) and ``CodesDataset`` draws one view per item; a run on all views therefore sees flipped
images the online run never sees. ``views=['orig']`` is the online run's data.
"""
import copy

import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from gear.apis.extract_codes import extract_codes
from gear.datasets import CodesDataset
from gear.registry import DATASETS, MODELS

from ..codes_helpers import codes_cfg, stage_weights

B = 8
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, fashion_mnist_root):
    tmp = tmp_path_factory.mktemp('codes_step')
    cfg = codes_cfg(stage_weights(tmp / 'stage0.pth', seed=0), tmp / 'codes', B)
    root = extract_codes(cfg, batch_size=B, device='cpu', progress=False)
    source = cfg.train_dataloader.dataset.source.to_dict()
    online = default_collate([DATASETS.build(source)[i] for i in range(B)])
    codes = default_collate([CodesDataset(root, source, views=['orig'])[i] for i in range(B)])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model, online, codes


def step(cfg, model, batch):
    """One train_step of ``model`` on ``batch``; (logs, gradients of the prior parameters)."""
    model.train()
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper.to_dict()))
    grads = {}
    handles = [p.register_hook(lambda g, n=n: grads.__setitem__(n, g.clone()))
               for n, p in model.prior.named_parameters()]
    MessageHub.get_instance('gear-codes-step').update_info('iter', 0)
    torch.manual_seed(1)  # class / token dropout draw the same
    logs = model.train_step(batch, optim)
    for h in handles:
        h.remove()
    return logs, grads


def test_codes_hold_the_online_tokens_and_targets(setup):
    _, model, online, codes = setup
    x = online['img']
    assert torch.equal(codes['tokens'], model.encode(x))  # (B, N)
    assert torch.equal(codes['label'], online['label'])
    assert (codes['view'] == 0).all()
    torch.testing.assert_close(model.tokens_and_targets(codes)[1]['effnet'],
                               model.teacher_features(x)['effnet'], **TOL)


def test_one_step_from_codes_equals_the_online_step(setup):
    cfg, model, online, codes = setup
    models = [copy.deepcopy(model), copy.deepcopy(model)]
    (logs_a, grads_a), (logs_b, grads_b) = step(cfg, models[0], online), step(cfg, models[1], codes)
    assert logs_a.keys() == logs_b.keys() and 'prior/loss_align' in logs_a
    for k in logs_a:
        torch.testing.assert_close(logs_b[k], logs_a[k], **TOL, msg=k)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(model.prior.parameters()))
    for n in grads_a:
        torch.testing.assert_close(grads_b[n], grads_a[n], **TOL, msg=n)
    for attr in ('prior', 'prior_ema'):
        after_a, after_b = getattr(models[0], attr), getattr(models[1], attr)
        for (n, a), (_, b) in zip(after_a.named_parameters(), after_b.named_parameters()):
            torch.testing.assert_close(b, a, **TOL, msg=f'{attr}.{n}')
    moved = [not torch.equal(a, b) for a, b in zip(models[0].prior.parameters(),
                                                   model.prior.parameters())]
    assert sum(moved) > len(moved) // 2  # the step did change the weights
    # validation from codes equals validation online, per image
    models[0].eval()
    val_a, val_b = models[0].val_step(online), models[0].val_step(codes)
    for a, b in zip(val_a, val_b):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-6), k
