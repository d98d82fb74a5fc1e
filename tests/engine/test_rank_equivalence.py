"""Two processes with batch B each compute what one process computes with batch 2B:
- the quantizer's entropy regulariser, whose batch-mean assignment is a mean over ranks: the
  same loss (mean over ranks) and the same parameter gradients under per-module DDP, ZeRO-1 and
  ZeRO-2 (the stages that train a tokenizer; ZeRO-3 runs only frozen-tokenizer stages);
- ``SyncBatchNorm`` (``sync_bn='gear'``): the same output, input gradients, summed parameter
  gradients and running statistics as ``BatchNorm2d`` on the whole batch;
- ``broadcast_coalesced`` (the runner's start-up weight sync): every rank ends with rank 0's
  tensors, over several buckets and dtypes.
One ``torchrun`` launch of tests/engine/dist_worker.py (gloo, 2 CPU processes, real Fashion-MNIST
images) computes every case; the references are computed here, in one process.
"""
import pytest
import torch

from ..conftest import run_tool
from .dist_worker import GLOBAL_BATCH, images, tokenizer

WORLD = 2


@pytest.fixture(scope='module')
def ranks(tmp_path_factory, fashion_mnist_root):
    pytest.importorskip('deepspeed', reason='DeepSpeed is not installed')
    out = tmp_path_factory.mktemp('ranks')
    run_tool(['-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={WORLD}',
              'tests/engine/dist_worker.py', str(out)], timeout=600)

    def load(case):
        return [torch.load(out / f'{case}_rank{r}.pt', weights_only=False) for r in range(WORLD)]
    return load


@pytest.fixture(scope='module')
def entropy_reference(fashion_mnist_root):
    model = tokenizer()
    _, q = model(images())
    loss = q.losses['loss_entropy']
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


@pytest.mark.parametrize('strategy', ['ddp', 'zero1', 'zero2'])
def test_entropy_regularizer_matches_one_process(ranks, entropy_reference, strategy):
    want_loss, want_grads = entropy_reference
    got = ranks(f'entropy_{strategy}')
    # the logged loss is the mean over ranks (LogSyncHook); the regulariser's batch entropy is
    # already global, its per-sample entropy a per-rank mean of equal halves
    loss = sum(r['loss'] for r in got) / WORLD
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-7)
    assert want_grads, 'the entropy regulariser sent no gradient to the tokenizer'
    # float summation order differs between the runs: entries are compared to 1e-4 of the
    # largest gradient entry (measured differences: below 2e-5 of it); a missing all-reduce or
    # a wrong mean is off by O(1)
    atol = 1e-4 * max(g.abs().max().item() for g in want_grads.values())
    for rank in got:
        for name, want in want_grads.items():
            grad = rank['grads'][name]
            assert grad is not None, f'{strategy}: {name} has no gradient'
            torch.testing.assert_close(grad, want, rtol=1e-4, atol=atol,
                                       msg=lambda m: f'{strategy} {name}: {m}')


def test_sync_batchnorm_matches_batchnorm_on_the_whole_batch(ranks, fashion_mnist_root):
    got = ranks('sync_bn')
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3, momentum=0.1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    weights = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = images().requires_grad_(True)
    y = bn(x)
    (y * weights).sum().backward()
    bn(x.detach() * 0.5 + 0.1)
    half = GLOBAL_BATCH // WORLD
    for r, rank in enumerate(got):
        part = slice(r * half, (r + 1) * half)
        torch.testing.assert_close(rank['y'], y.detach()[part], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rank['dx'], x.grad[part], rtol=1e-4, atol=1e-6)
        for key in ('running_mean', 'running_var'):
            torch.testing.assert_close(rank[key], getattr(bn, key), rtol=1e-5, atol=1e-6)
        assert int(rank['num_batches_tracked']) == 2
    # each rank holds the gradient of its samples; DDP would sum (and divide by the world size)
    torch.testing.assert_close(sum(r['dweight'] for r in got), bn.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sum(r['dbias'] for r in got), bn.bias.grad, rtol=1e-4, atol=1e-5)


def test_broadcast_coalesced_gives_every_rank_rank0s_tensors(ranks):
    for rank in ranks('broadcast'):
        shapes = [(3, 2), (7,), (4,), (5,), (0,), (9,)]
        assert [tuple(t.shape) for t in rank['tensors']] == shapes
        assert [t.dtype for t in rank['tensors']][:4] == [torch.float32, torch.long,
                                                          torch.float32, torch.float64]
        assert all((t == 0).all() for t in rank['tensors'])
