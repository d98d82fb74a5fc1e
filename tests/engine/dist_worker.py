"""Run by ``torchrun --nproc_per_node 2`` from tests/engine/test_rank_equivalence.py: each rank
takes its half of a real Fashion-MNIST batch and writes what the test compares with one process
on the whole batch.

    python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tests/engine/dist_worker.py OUT_DIR

Cases (one file per case and rank, ``OUT_DIR/{case}_rank{r}.pt``):
- ``entropy_{ddp,zero1,zero2}``: the shipped tiny tokenizer (configs/_base_/models/vq_tiny.py's ``_tokenizer``,
  seed 0) in training mode, wrapped as gear wraps it (DDP on ``ddp_process_group()``, or a
  DeepSpeed ZeRO engine); loss = its entropy regulariser; saved: the loss and every parameter's
  gradient after the strategy's reduction (DDP's mean; ZeRO's reduced full gradient).
- ``sync_bn``: ``gear.utils.sync_batchnorm.SyncBatchNorm`` on the rank's half: the output, the
  input gradient, the local weight / bias gradients and the running statistics after two steps.
- ``broadcast``: tensors of three dtypes filled with the rank's number, after
  ``broadcast_coalesced`` with buckets of at most 10 elements.
"""
import os
import os.path as osp
import sys

import torch
import torch.distributed as dist

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from gear.registry import TOKENIZERS  # noqa: E402
from gear.utils.distributed import (broadcast_coalesced, ddp_process_group,  # noqa: E402
                                    init_process_group)
from gear.utils.sync_batchnorm import SyncBatchNorm  # noqa: E402

GLOBAL_BATCH = 8


def images(n: int = GLOBAL_BATCH) -> torch.Tensor:
    """The first n Fashion-MNIST training images as the shipped configs load them (32 px, RGB)."""
    from gear.datasets.fashion_mnist import FashionMNIST
    dataset = FashionMNIST('/usr/share/datasets/fashion-mnist', split='train', resolution=32)
    return torch.stack([dataset[i]['img'] for i in range(n)])  # (n, 3, 32, 32)


def tokenizer():
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/models/vq_tiny.py'))
    return TOKENIZERS.build(cfg._tokenizer).train()


def entropy_case(strategy: str, x: torch.Tensor) -> dict:
    model = tokenizer()
    names = [n for n, _ in model.named_parameters()]
    if strategy == 'ddp':
        handle = torch.nn.parallel.DistributedDataParallel(model, process_group=ddp_process_group())
        x_hat, q = handle(x)
        loss = q.losses['loss_entropy']
        # DDP reduces once every parameter has its gradient: the decoder gets a zero one here,
        # as the real tokenizer loss reaches it (a tensor inside QuantizerOutput alone would
        # leave the decoder's buckets unreduced, and every gradient per rank)
        (loss + 0.0 * x_hat.mean()).backward()
        grads = [p.grad for p in model.parameters()]
    else:
        import deepspeed
        from deepspeed.utils import safe_get_full_grad
        stage = int(strategy[-1])
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=dict(
            train_micro_batch_size_per_gpu=x.shape[0], gradient_accumulation_steps=1,
            zero_optimization=dict(stage=stage), zero_allow_untested_optimizer=True,
            steps_per_print=2 ** 31 - 1))
        _, q = engine(x)
        loss = q.losses['loss_entropy']
        engine.backward(loss)
        grads = [safe_get_full_grad(p) for p in model.parameters()]
    return dict(loss=loss.detach(), grads={n: None if g is None else g.detach().clone()
                                           for n, g in zip(names, grads)})


def sync_bn_case(x: torch.Tensor) -> dict:
    torch.manual_seed(0)
    bn = SyncBatchNorm(3, momentum=0.1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    weights = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rank = dist.get_rank()
    half = x.shape[0]
    w = weights[rank * half:(rank + 1) * half]
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * w).sum().backward()  # a loss that is a sum over samples: the ranks' gradients add up
    bn(x.detach() * 0.5 + 0.1)  # a second step for the running statistics
    return dict(y=y.detach(), dx=x.grad, dweight=bn.weight.grad, dbias=bn.bias.grad,
                running_mean=bn.running_mean.clone(), running_var=bn.running_var.clone(),
                num_batches_tracked=bn.num_batches_tracked.clone())


def broadcast_case() -> dict:
    rank = dist.get_rank()
    tensors = [torch.full((3, 2), rank, dtype=torch.float32), torch.full((7,), rank, dtype=torch.long),
               torch.full((4,), rank, dtype=torch.float32), torch.full((5,), rank, dtype=torch.float64),
               torch.zeros(0), torch.full((9,), rank, dtype=torch.float32)]
    broadcast_coalesced(tensors, bucket_numel=10)
    return dict(tensors=tensors)


def main(out_dir: str) -> None:
    init_process_group('gloo', timeout_s=120)
    rank, world = dist.get_rank(), dist.get_world_size()
    x = images()
    half = x.shape[0] // world
    local = x[rank * half:(rank + 1) * half]
    results = {f'entropy_{s}': entropy_case(s, local) for s in ('ddp', 'zero1', 'zero2')}
    results['sync_bn'] = sync_bn_case(local)
    results['broadcast'] = broadcast_case()
    for case, value in results.items():
        torch.save(value, osp.join(out_dir, f'{case}_rank{rank}.pt'))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    os.makedirs(sys.argv[1], exist_ok=True)
    main(sys.argv[1])
