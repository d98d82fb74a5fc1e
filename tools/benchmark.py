"""Benchmark one training stage on synthetic batches: images/s, time per phase, memory, MFU.

    python tools/benchmark.py configs/gear/gear_vq_tiny_fashionmnist.py --iters 5 --warmup 2
    python tools/benchmark.py configs/gear/gear_vq_l_imagenet.py --batch-size 32 --amp bf16 \
        --peak-tflops 989 --out bench_gear_l.json

Stage 0 (TokenizerWarmup), stage 1 (GEAR) and stage 2 (FrozenTokenizerAR) alike: the model and
its optimizer wrappers are built from the config (mmengine's ``build_optim_wrapper`` with the
config's constructor) without its ``init_from`` weights (``init_weights`` is not called: the
cost is the same) and hub weights off (``TimmTeacher`` and ``LPIPS`` with
``pretrained_source='none'``: random weights, the same cost). ``model.train_step`` then runs on
random batches of the configured size, resident on the device, at a step past ``disc_start``.

Timing: ``--warmup`` untimed steps, then ``--iters`` timed ones; each phase method
(``tokenizer_phase``, ``discriminator_phase``, ``prior_phase``) is wrapped on the instance and
timed, with ``torch.cuda.synchronize`` around it on a GPU; ``other`` is the rest of the step
(teacher, tokenizer forward, EMA, data preprocessing). Memory: ``torch.cuda.max_memory_allocated``
on a GPU, the peak RSS of the process on a CPU.

FLOPs: one extra (untimed) step runs under torch's ``FlopCounterMode`` (``gear.utils.flops``):
matmul, convolution and attention FLOPs of the forward AND backward passes as executed (2 per
multiply-add; frozen modules only pass input gradients), without compile or activation
recomputation, i.e. model FLOPs. MFU = FLOPs per step / step time / ``--peak-tflops``. The
analytic LlamaGen formula (forward x 3 for the trained hard branch, x 2 for the frozen soft
early-exit branch) is written beside it as a cross-check of the AR part.
"""
import argparse
import json
import os.path as osp
import resource
import sys
import time
from collections import defaultdict
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import gear.engine  # noqa: E402,F401  (registers gear's optimizers, wrappers, hooks)
from gear.utils.device import DEVICE_HELP, default_device, device_name  # noqa: E402
from gear.engine.batch import per_rank_batch  # noqa: E402
from gear.engine.config_check import check_overrides, read_config  # noqa: E402
from gear.engine.optim_wrappers import DeferredGradNormMixin  # noqa: E402
from gear.registry import MODELS  # noqa: E402
from gear.utils.checkpoint import atomic_write_bytes  # noqa: E402
from gear.utils.flops import flop_counter, llamagen_forward_flops  # noqa: E402

PHASES = ('tokenizer_phase', 'discriminator_phase', 'prior_phase')
STAGES = (('GEAR', 'stage1'), ('FrozenTokenizerAR', 'stage2'), ('TokenizerWarmup', 'stage0'))
STEP = 1_000_000  # the message hub's 'iter' during the benchmark: past any disc_start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Training-step throughput, memory and MFU.')
    parser.add_argument('config', help='a stage 0, 1 or 2 config')
    parser.add_argument('--iters', type=int, default=10, help='timed steps')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps before timing')
    parser.add_argument('--batch-size', type=int, help="per-device batch (default: the config's "
                        'global_batch_size, as one process trains it)')
    parser.add_argument('--amp', choices=['config', 'bf16', 'fp32'], default='config',
                        help="config: the config's wrappers (AmpOptimWrapper becomes "
                        'GearAmpOptimWrapper off CUDA); bf16: GearAmpOptimWrapper bf16 for every '
                        'group; fp32: GearOptimWrapper')
    parser.add_argument('--autocast-step', action='store_true',
                        help='also autocast (bf16) what train_step runs outside the optimizer '
                        'contexts (tokenizer forward, teacher)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the AR blocks (LlamaGenGPT compile=True) and the '
                        'tokenizer (nn.Module.compile)')
    parser.add_argument('--grad-checkpointing', action='store_true',
                        help='LlamaGenGPT grad_checkpointing=True (per-block recomputation)')
    parser.add_argument('--fused-adamw', action='store_true',
                        help="optimizer type AdamW -> FusedAdamW (fused kernel where supported)")
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='device peak for MFU, e.g. 989 (H100 SXM bf16 dense)')
    parser.add_argument('--device', default=default_device(), help=DEVICE_HELP)
    parser.add_argument('--codes', action='store_true',
                        help='stage 2: also time the step from pre-extracted codes (the same '
                        'images encoded once), interleaved with the online step')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='benchmark.json', help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides, applied last')
    return parser


# ---------------------------------------------------------------------- config
def _walk(node, fn):
    """Apply ``fn`` to every dict in a nested config (depth first)."""
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def benchmark_config(cfg: Config, args) -> Config:
    """The config's model and optimizer, offline and with the benchmark's options."""
    model = cfg.model

    def offline_and_flags(node):
        if node.get('type') in ('TimmTeacher', 'LPIPS'):
            node['pretrained_source'] = 'none'
        if node.get('type') == 'LlamaGenGPT':
            if args.grad_checkpointing:
                node['grad_checkpointing'] = True
            if args.compile:
                node['compile'] = True
    _walk(model, offline_and_flags)
    for name, group in cfg.optim_wrapper.items():
        if not isinstance(group, dict) or 'optimizer' not in group:
            continue  # 'constructor', 'paramwise_cfg'
        kind = group.get('type', 'OptimWrapper')
        if args.amp == 'bf16':
            group.update(type='GearAmpOptimWrapper', dtype='bfloat16')
        elif args.amp == 'fp32':
            group['type'] = 'GearOptimWrapper'
            group.pop('dtype', None)
        elif kind == 'OptimWrapper':
            group['type'] = 'GearOptimWrapper'  # same, but the grad norm stays on the device
        elif kind == 'AmpOptimWrapper' and not args.device.startswith('cuda'):
            group.update(type='GearAmpOptimWrapper', dtype=group.get('dtype') or 'bfloat16')
        if group['type'].startswith('Gear'):
            group.pop('loss_scale', None)  # no GradScaler in gear's wrappers
        if args.fused_adamw and group['optimizer'].get('type') == 'AdamW':
            group['optimizer']['type'] = 'FusedAdamW'
            for key in ('fused', 'foreach'):
                group['optimizer'].pop(key, None)
    check_overrides(cfg, args.cfg_options)
    cfg.merge_from_dict(args.cfg_options)
    # one process: the per-rank batch is the whole global batch (gear/engine/batch.py)
    cfg.train_dataloader.batch_size = (args.batch_size if args.batch_size is not None
                                       else per_rank_batch(cfg.global_batch_size, 1))
    return cfg


def stage_of(model) -> str:
    for cls_name, stage in STAGES:
        if any(c.__name__ == cls_name for c in type(model).__mro__):
            return stage
    raise TypeError(f'{type(model).__name__} is not a gear stage model '
                    f'({", ".join(c for c, _ in STAGES)})')


# ---------------------------------------------------------------------- timing
class PhaseTimer:
    """Wraps the model's phase methods (on the instance) to time them and count their FLOPs."""

    def __init__(self, model, device: torch.device):
        self.cuda = device.type == 'cuda'
        self.times = defaultdict(float)  # phase -> seconds in the current step
        self.flops = defaultdict(int)
        self.counter = None  # a FlopCounterMode while counting
        for name in PHASES:
            if hasattr(model, name):
                setattr(model, name, self._wrap(name, getattr(model, name)))

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _wrap(self, name, method):
        phase = name[:-len('_phase')]

        def timed(*args, **kwargs):
            before = self.counter.get_total_flops() if self.counter else 0
            self.sync()
            start = time.perf_counter()
            out = method(*args, **kwargs)
            self.sync()
            self.times[phase] += time.perf_counter() - start
            if self.counter:
                self.flops[phase] += self.counter.get_total_flops() - before
            return out
        return timed


def synthetic_batch(cfg: Config, ar, device: torch.device, generator: torch.Generator) -> dict:
    """A batch like the dataloader's: img (B, 3, R, R) in [-1, 1], label (B,)."""
    batch = cfg.train_dataloader.batch_size
    res = cfg.train_dataloader.dataset.resolution
    num_classes = ar.num_classes if ar is not None else 1000
    img = torch.rand(batch, 3, res, res, generator=generator) * 2 - 1
    label = torch.randint(0, num_classes, (batch,), generator=generator)
    return dict(img=img.to(device), label=label.to(device))


def ar_formula_flops(model, stage: str, batch: int) -> int:
    """Analytic AR FLOPs per step: hard branch fwd+bwd (3x), soft early exit fwd+dgrad (2x)."""
    if stage == 'stage0':
        return 0
    prior = model.prior
    flops = 3 * llamagen_forward_flops(prior.ar, batch)
    if stage == 'stage1':
        flops += 2 * llamagen_forward_flops(prior.ar, batch, n_layers=prior.align_depth,
                                            soft=True, head=False)
    return flops


def count_step_flops(model, ar, timer: PhaseTimer, run_step) -> int:
    """FLOPs of one step (also split per phase into ``timer.flops``) with compile and activation
    recomputation off: model FLOPs, not hardware FLOPs."""
    saved = (ar.compile_kwargs, ar.grad_checkpointing) if ar is not None else None
    if ar is not None:
        ar.compile_kwargs, ar.grad_checkpointing = None, False
    tokenizer = getattr(model, 'tokenizer', None)
    compiled = getattr(tokenizer, '_compiled_call_impl', None)  # nn.Module.compile()
    if compiled is not None:
        tokenizer._compiled_call_impl = None
    try:
        with flop_counter() as counter:
            timer.counter = counter
            run_step()
    finally:
        timer.counter = None
        if ar is not None:
            ar.compile_kwargs, ar.grad_checkpointing = saved
        if compiled is not None:
            tokenizer._compiled_call_impl = compiled
    return counter.get_total_flops()


def peak_memory(device: torch.device) -> dict:
    if device.type == 'cuda':
        return dict(peak_memory_bytes=torch.cuda.max_memory_allocated(device),
                    memory_kind='cuda_max_memory_allocated')
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return dict(peak_memory_bytes=rss_kb * 1024, memory_kind='cpu_peak_rss_process')


def run(args) -> dict:
    DefaultScope.get_instance('gear-benchmark', scope_name='gear')
    cfg = benchmark_config(read_config(args.config), args)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model).to(device).train()
    if args.compile and hasattr(model, 'tokenizer'):
        model.tokenizer.compile()
    stage = stage_of(model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    wrappers = dict(optim.items()) if hasattr(optim, 'items') else {'': optim}
    for name, wrapper in wrappers.items():
        if isinstance(wrapper, DeferredGradNormMixin):
            wrapper.grad_norm_key = f'grad_norm/{name}'  # as LogSyncHook: no per-step sync
    hub = MessageHub.get_current_instance()
    timer = PhaseTimer(model, device)
    ar = model.prior.ar if hasattr(model, 'prior') else None
    gen = torch.Generator().manual_seed(args.seed)

    def step(i: int, batch: Optional[dict] = None) -> float:
        batch = batch if batch is not None else synthetic_batch(cfg, ar, device, gen)
        hub.update_info('iter', STEP + i)
        timer.times.clear()
        timer.sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast_step):
            model.train_step(batch, optim)
        timer.sync()
        for wrapper in wrappers.values():
            if isinstance(wrapper, DeferredGradNormMixin):
                wrapper.pop_grad_norms()
        return time.perf_counter() - start

    flops = count_step_flops(model, ar, timer, lambda: step(-1))
    for i in range(args.warmup):
        step(i)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    step_times, phase_times = [], defaultdict(list)
    for i in range(args.iters):
        step_times.append(step(args.warmup + i))
        for phase, seconds in timer.times.items():
            phase_times[phase].append(seconds)

    mean = sum(step_times) / len(step_times)
    median = sorted(step_times)[len(step_times) // 2]
    phases = {p: sum(ts) / len(step_times) for p, ts in phase_times.items()}
    phases['other'] = max(mean - sum(phases.values()), 0.0)
    batch = cfg.train_dataloader.batch_size
    achieved = flops / mean / 1e12
    record = dict(
        config=args.config, stage=stage, model=type(model).__name__,
        device=str(device), device_name=device_name(device),
        torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
        batch_size=batch, image_size=cfg.train_dataloader.dataset.get('resolution'),
        iters=args.iters, warmup=args.warmup, amp=args.amp, autocast_step=args.autocast_step,
        compile=args.compile, grad_checkpointing=args.grad_checkpointing,
        fused_adamw=args.fused_adamw,
        optim_wrappers={n: type(w).__name__ for n, w in wrappers.items()},
        optimizers={n: type(w.optimizer).__name__ for n, w in wrappers.items()},
        step_time_s=mean, step_times_s=step_times, images_per_s=batch / mean,
        step_time_median_s=median, images_per_s_median=batch / median,  # robust on shared hosts
        phase_time_s=phases, phase_sum_s=sum(phases.values()),
        flops_method=('torch.utils.flop_counter.FlopCounterMode over one train_step: forward + '
                      'backward as executed; matmul/conv/attention; 2 FLOPs per multiply-add; '
                      'no compile, no activation recomputation'),
        flops_per_step=flops, flops_per_image=flops / batch,
        flops_per_phase=dict(timer.flops, other=flops - sum(timer.flops.values())),
        ar_formula_flops_per_step=ar_formula_flops(model, stage, batch),
        achieved_tflops=achieved, peak_tflops=args.peak_tflops,
        mfu=achieved / args.peak_tflops if args.peak_tflops else None,
        params={n: sum(p.numel() for p in m.parameters())
                for n, m in model.named_children() if n in (
                    'tokenizer', 'discriminator', 'prior', 'teachers', 'perceptual_loss')},
        **peak_memory(device))
    if args.codes:
        record['codes'] = time_codes(model, cfg, ar, device, gen, step, args)
    return record


def time_codes(model, cfg, ar, device, gen, step, args) -> dict:
    """Stage 2 online vs from codes, interleaved: each round draws images, encodes them once
    (tokens and teacher targets, as ``tools/extract_codes.py`` stores them; untimed) and times
    one step on the images and one on their codes."""
    times = dict(online=[], codes=[])
    for i in range(args.warmup + args.iters):
        batch = synthetic_batch(cfg, ar, device, gen)
        with torch.no_grad():
            data = model.data_preprocessor(batch, True)
            codes = dict(tokens=model.encode(data['img']), label=data['label'],
                         teacher_maps=model.teacher_maps(data['img']))
        online_s, codes_s = step(i, batch), step(i, codes)
        if i >= args.warmup:
            times['online'].append(online_s)
            times['codes'].append(codes_s)
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    batch = cfg.train_dataloader.batch_size
    return dict(step_times_s=times, step_time_median_s=median,
                images_per_s_median={k: batch / v for k, v in median.items()},
                speedup_median=median['online'] / median['codes'])


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        sys.exit(f'--iters must be >= 1 and --warmup >= 0, got {args.iters} and {args.warmup}')
    if not osp.isfile(args.config):
        sys.exit(f'config file not found: {args.config}')
    if args.codes and read_config(args.config).model.type != 'FrozenTokenizerAR':
        sys.exit(f'--codes times stage 2 / the baseline (FrozenTokenizerAR); {args.config} '
                 f'trains {read_config(args.config).model.type}')
    record = run(args)
    atomic_write_bytes(json.dumps(record, indent=2).encode(), args.out)
    mfu = f', MFU {record["mfu"]:.1%}' if record['mfu'] is not None else ''
    phases = ', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in record['phase_time_s'].items())
    if 'codes' in record:
        c = record['codes']
        print(f'[benchmark] from codes: {c["images_per_s_median"]["codes"]:.2f} images/s vs '
              f'online {c["images_per_s_median"]["online"]:.2f} images/s (median step), '
              f'speed-up {c["speedup_median"]:.2f}x')
    print(f'[benchmark] {record["stage"]} {record["images_per_s"]:.2f} images/s, step '
          f'{record["step_time_s"] * 1e3:.1f} ms ({phases}), '
          f'{record["flops_per_image"] / 1e9:.2f} GFLOP/image, '
          f'{record["achieved_tflops"]:.3f} TFLOP/s{mfu}, peak memory '
          f'{record["peak_memory_bytes"] / 2**30:.2f} GiB -> {args.out}')


if __name__ == '__main__':
    main()
