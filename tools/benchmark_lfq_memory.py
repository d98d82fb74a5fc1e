"""Peak CPU memory of the LFQ soft branch: the naive entropy term vs ``LookupFreeQuantizer``.

    python tools/benchmark_lfq_memory.py --bits 14 --batch 32 --out lfq_memory.json
    python tools/benchmark_lfq_memory.py --bits 10 12 14 --batch 8 16 32 --out lfq_memory.json

One measured step, per form, k (bits, K = 2**k) and batch (x ``--tokens`` positions):
quantizer forward in training mode (d, commitment, entropy), the soft read-out
``softmax(-d / 0.1)`` times an embedding table E (K x ``--embed-dim``, as the AR's soft
embedding), and the backward of ``loss_commit + loss_entropy + mean((probs @ E)^2)``.

- ``naive``: the entropy term of the full (N, K) assignment, gear's generic
  ``entropy_regularizer(d, 0.01)`` (the release's form);
- ``lfq``: ``LookupFreeQuantizer``'s own term (per-bit entropies, batch mean in checkpointed
  chunks of ``--chunk-size`` positions).

What is measured: each configuration runs in a fresh subprocess. After the inputs (z, E) are
built and one tiny warm-up step has run, the process's peak resident set size so far
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is the baseline; the reported number is the
growth of that peak over the baseline during the measured step, i.e. the memory the step
itself needed at its peak (large tensors are mmap'd by the allocator and returned on free, so
RSS tracks live tensor memory closely). torch's CPU allocator has no peak statistics, so RSS is
what is used, with glibc's mmap threshold fixed at 64 KiB in the worker (``MALLOC_ENV``).
Writes every measurement as JSON (``--out``) and prints a table.
"""
import argparse
import json
import os.path as osp
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

FORMS = ('naive', 'lfq')
MIB = 1024.0 * 1024.0
# glibc: a fixed mmap threshold (no dynamic raise up to 32 MiB), so that every tensor above
# 64 KiB is mmap'd and returned to the OS when freed, and RSS follows the live tensors.
MALLOC_ENV = dict(MALLOC_MMAP_THRESHOLD_='65536')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Peak memory of the LFQ soft branch.')
    parser.add_argument('--bits', type=int, nargs='+', default=[10, 12, 14], help='k; K = 2**k')
    parser.add_argument('--batch', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--tokens', type=int, default=256, help='positions per image (16 x 16)')
    parser.add_argument('--embed-dim', type=int, default=1024, help='width of E (K x dim)')
    parser.add_argument('--chunk-size', type=int, default=1024, help='entropy_chunk_size')
    parser.add_argument('--forms', nargs='+', choices=FORMS, default=list(FORMS))
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--timeout', type=float, default=1800, help='seconds per configuration')
    parser.add_argument('--out', help='JSON file to write')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    return parser


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def soft_branch_step(quantizer, z, embedding, naive: bool):
    """One training step of the soft branch; returns the loss (after its backward)."""
    from gear.models.quantizers import entropy_regularizer
    q = quantizer(z)
    loss = q.losses['loss_commit']
    if naive:
        loss = loss + 0.05 * entropy_regularizer(q.d, 0.01)
    else:
        loss = loss + q.losses['loss_entropy']
    probs = (-q.d / 0.1).softmax(-1)  # (B, L, K), the soft read-out
    loss = loss + (probs @ embedding).square().mean()  # (B, L, dim), the AR's soft input
    loss.backward()
    return loss.detach()


def run_worker(form: str, bits: int, batch: int, tokens: int, embed_dim: int, chunk_size: int,
               threads: int) -> dict:
    """Measure one configuration in this process (see the module docstring)."""
    import torch
    from gear.models.quantizers import LookupFreeQuantizer
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    side = int(round(tokens**0.5))
    if side * side != tokens:
        raise ValueError(f'--tokens must be a square, got {tokens}')
    quantizer = LookupFreeQuantizer(2**bits, entropy_chunk_size=chunk_size,
                                    entropy_loss_ratio=0.0 if form == 'naive' else 0.05).train()
    embedding = (torch.randn(2**bits, embed_dim) * 0.02).requires_grad_()  # (K, dim)
    z = (torch.randn(batch, bits, side, side) * 0.01).requires_grad_()  # (B, k, h, w)
    soft_branch_step(quantizer, z[:1, :, :1, :1], embedding, form == 'naive')  # warm-up
    z.grad = embedding.grad = None
    baseline = _peak_rss_mib()
    start = time.perf_counter()
    loss = soft_branch_step(quantizer, z, embedding, form == 'naive')
    seconds = time.perf_counter() - start
    peak = _peak_rss_mib()
    n, k_codes = batch * tokens, 2**bits
    return dict(form=form, bits=bits, codebook_size=k_codes, batch=batch, tokens=tokens,
                positions=n, embed_dim=embed_dim, chunk_size=chunk_size,
                baseline_rss_mib=baseline, peak_rss_mib=peak, peak_growth_mib=peak - baseline,
                nk_tensor_mib=n * k_codes * 4 / MIB, seconds=seconds, loss=float(loss),
                torch_threads=torch.get_num_threads())


def measure(form: str, bits: int, batch: int, args) -> dict:
    """Run one configuration in a fresh subprocess; its JSON record (or the error)."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', '--forms', form,
           '--bits', str(bits), '--batch', str(batch), '--tokens', str(args.tokens),
           '--embed-dim', str(args.embed_dim), '--chunk-size', str(args.chunk_size),
           '--threads', str(args.threads)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                env=dict(os.environ, **MALLOC_ENV))
    except subprocess.TimeoutExpired:
        return dict(form=form, bits=bits, batch=batch, error=f'timeout after {args.timeout} s')
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return dict(form=form, bits=bits, batch=batch,
                    error=f'exit {result.returncode}: ' + ' | '.join(tail))
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_table(records) -> str:
    lines = [f'{"k":>3} {"K":>6} {"batch":>5} {"N":>6} {"(N,K) MiB":>10} {"form":>6} '
             f'{"peak growth MiB":>16} {"seconds":>8}']
    for r in records:
        if 'error' in r:
            lines.append(f'{r["bits"]:>3} {"":>6} {r["batch"]:>5} {"":>6} {"":>10} '
                         f'{r["form"]:>6} ERROR {r["error"]}')
            continue
        lines.append(f'{r["bits"]:>3} {r["codebook_size"]:>6} {r["batch"]:>5} {r["positions"]:>6} '
                     f'{r["nk_tensor_mib"]:>10.0f} {r["form"]:>6} {r["peak_growth_mib"]:>16.1f} '
                     f'{r["seconds"]:>8.2f}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.forms[0], args.bits[0], args.batch[0], args.tokens,
                                    args.embed_dim, args.chunk_size, args.threads)))
        return 0
    records = []
    for bits in args.bits:
        for batch in args.batch:
            for form in args.forms:
                records.append(measure(form, bits, batch, args))
                print(format_table(records[-1:]).splitlines()[-1], flush=True)
    import torch
    report = dict(measurements=records, method='peak RSS growth over a post-setup baseline, '
                  'one fresh subprocess per configuration (resource.getrusage ru_maxrss)',
                  torch=torch.__version__, platform=platform.platform(),
                  argv=sys.argv[1:] if argv is None else list(argv))
    print(format_table(records))
    if args.out:
        from gear.utils.checkpoint import atomic_write_bytes
        atomic_write_bytes(json.dumps(report, indent=2).encode(), args.out)
    return 1 if any('error' in r for r in records) else 0


if __name__ == '__main__':
    sys.exit(main())
