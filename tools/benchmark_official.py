"""Benchmark gear's GEAR training iteration against the official release's modules, side by side.

    python tools/benchmark_official.py --peer-dir ~/src/GEAR --amp fp32 --out bench/off_fp32.json
    python tools/benchmark_official.py --peer-dir ~/src/GEAR --amp bf16 --out bench/off_bf16.json
    python tools/benchmark_official.py --sides gear --iters 1 --out bench/gear_only.json   # no peer

The configuration is issue 15's tiny one (``TINY``): ``configs/gear/gear_vq_tiny_fashionmnist.py``
with a VQ tokenizer of ch 128, ch_mult (1, 2), two residual blocks per level, z 256 (the release's
``Encoder`` / ``Decoder`` defaults, which its ``ModelArgs`` cannot change), 64 codes of dimension
8, on 32 px images (16 x 16 tokens); a LlamaGen GPT of dim 64, 3 layers, 4 heads, SwiGLU multiple
256 (the release's), aligned after 2 blocks; REPA projector width 256; 10 classes; batch 4. The
loss recipe is the release's ``loss_l1_lpips_gan_vq.yaml`` on both sides: L1 (1.0) + LPIPS-VGG
(1.0) + quantizer (codebook + 0.25 commit + 0.05 entropy at T 0.01) + hinge GAN (0.1, from step 0)
+ 0.5 soft alignment (tau 0.1); discriminator hinge; prior CE + 0.5 hard alignment; AdamW
(0.9, 0.999), eps 1e-8, no weight decay, clip 1.0 for each group; EMA of tokenizer and AR.

The release's side (``tools/benchmark_official_peer.py``) is imported from the checkout given
(``--peer-dir``, Tencent-Hunyuan/GEAR), never copied into gear; that file says how.

Shared, so that both sides run the same thing where the release needs a download:

- the teacher: the release's DINOv2 comes from the torch hub, so both sides use gear's
  EfficientNet-Lite0 teacher (128 px, on the 16 x 16 grid), the same module; each side runs it as
  it runs its teacher (the release under no_grad + autocast, gear as ``train_step`` does);
- LPIPS-VGG weights: the release's ``LPIPS`` loads torchvision's ImageNet VGG16 (a download) and
  its heads from ``$WORKSPACE/pretrained/lpips/vgg.pth`` (md5-checked). Both sides get the same
  files: ``--vgg-weights`` (a torchvision VGG16 state dict) or a seeded random VGG16 written to a
  temporary torch hub cache (the same cost), and the ``lpips`` package's ``v0.1/vgg.pth`` heads
  (the release's md5). gear's ``LPIPS`` reads the same two files.

Timing: ``--warmup`` untimed steps per side, then ``--repeats`` rounds; each round draws
``--iters`` random batches and times gear's ``train_step`` and the release's step on them, the
order alternating between rounds; seconds/step of a round = its mean; the fastest round counts.
Phases: gear's phase methods wrapped as ``tools/benchmark.py`` does, plus the teacher and the
tokenizer forward; the release's sections by the clock between its statements. FLOPs: one
untimed step of each side under torch's ``FlopCounterMode`` (``gear.utils.flops``: matrix
products, convolutions, attention; forward and backward as executed), total and by operator.
``--profile`` also runs ``torch.profiler`` over 2 steps of each side (top operators by self CPU
time). Writes JSON: seconds/step, images/s, the speed-up gear / release, phases, rounds, FLOPs.
"""
import argparse
import json
import os.path as osp
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Dict, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # its sibling benchmark_official_peer

import torch  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import gear.engine  # noqa: E402,F401  (registers gear's optimizers, wrappers, hooks)
from gear.engine.config_check import read_config  # noqa: E402
from gear.engine.optim_wrappers import DeferredGradNormMixin  # noqa: E402
from gear.models.phases import LOG_INTERVAL_INFO  # noqa: E402
from gear.registry import MODELS  # noqa: E402
from gear.utils.checkpoint import atomic_write_bytes  # noqa: E402
from gear.utils.device import DEVICE_HELP, default_device, device_name  # noqa: E402
from gear.utils.flops import flop_counter  # noqa: E402

from benchmark_official_peer import PEER_FILES, VGG_FILE, OfficialStep, import_peer  # noqa: E402

CONFIG = 'configs/gear/gear_vq_tiny_fashionmnist.py'
# issue 15's sizes; the keys the release's constructors take are derived from these
TINY = dict(resolution=32, ch=128, ch_mult=(1, 2), num_res_blocks=2, z_channels=256,
            codebook_size=64, embed_dim=8, dim=64, n_layer=3, n_head=4, ffn_multiple_of=256,
            align_depth=2, projector_dim=256, num_classes=10, teacher_image_size=128)
STEP = 1_000_000  # the message hub's 'iter': past disc_start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--peer-dir', help='a checkout of the official GEAR release '
                        '(Tencent-Hunyuan/GEAR); needed unless --sides gear')
    parser.add_argument('--sides', nargs='+', choices=['gear', 'official'],
                        default=['gear', 'official'], help='what to time')
    parser.add_argument('--amp', choices=['fp32', 'bf16'], default='fp32',
                        help='fp32, or bf16 autocast (gear: GearAmpOptimWrapper bf16 for every '
                        'group; the release: its accelerate mixed_precision=bf16 autocast)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--iters', type=int, default=5, help='timed steps per side per round')
    parser.add_argument('--repeats', type=int, default=3, help='interleaved rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per side first')
    parser.add_argument('--peer-diagnostics', action='store_true',
                        help="also time the release's per-step diagnostics and .item() logging")
    parser.add_argument('--vgg-weights', help='a torchvision VGG16 state dict for LPIPS on both '
                        'sides (default: a seeded random VGG16, the same cost)')
    parser.add_argument('--profile', action='store_true',
                        help='also profile 2 steps of each side (torch.profiler top operators)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--device', default=default_device(), help=DEVICE_HELP)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='bench_official.json', help='JSON file to write')
    return parser


def check_args(args) -> None:
    """Refuse bad arguments before anything is built (a missing or wrong peer checkout too)."""
    if args.iters < 1 or args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        sys.exit(f'--iters, --repeats and --batch-size must be >= 1 and --warmup >= 0, got '
                 f'{args.iters}, {args.repeats}, {args.batch_size} and {args.warmup}')
    if 'official' in args.sides:
        if not args.peer_dir:
            sys.exit('--peer-dir is needed to time the official release (or pass --sides gear)')
        missing = [f for f in PEER_FILES if not osp.isfile(osp.join(args.peer_dir, f))]
        if missing:
            sys.exit(f'--peer-dir {args.peer_dir}: missing {", ".join(missing)} (a checkout of '
                     'Tencent-Hunyuan/GEAR is expected)')
    if args.vgg_weights and not osp.isfile(args.vgg_weights):
        sys.exit(f'--vgg-weights {args.vgg_weights}: no such file')


# ---------------------------------------------------------------------- LPIPS weights
def lpips_heads_file() -> str:
    """The ``lpips`` package's LPIPS v0.1 VGG heads (the release's md5 d507d734...)."""
    import importlib.util
    spec = importlib.util.find_spec('lpips')
    if spec is None or spec.origin is None:
        sys.exit('the lpips package (its bundled weights/v0.1/vgg.pth heads) is needed: '
                 'pip install lpips')
    return osp.join(osp.dirname(spec.origin), 'weights', 'v0.1', 'vgg.pth')


def vgg_trunk_file(args, workdir: str) -> str:
    """A torchvision VGG16 state dict: --vgg-weights, or a seeded random one written once."""
    if args.vgg_weights:
        return osp.abspath(args.vgg_weights)
    import torchvision
    path = osp.join(workdir, 'random_' + VGG_FILE)
    torch.manual_seed(args.seed)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


# ---------------------------------------------------------------------- gear
def gear_config(args, vgg: Optional[str], heads: Optional[str]):
    """The tiny GEAR config at ``TINY``'s sizes, the release's loss weights, ``--amp``."""
    cfg = read_config(CONFIG)
    t = TINY
    m = cfg.model
    m.tokenizer.update(ch=t['ch'], ch_mult=t['ch_mult'], num_res_blocks=t['num_res_blocks'],
                       z_channels=t['z_channels'])
    m.tokenizer.quantizer.update(codebook_size=t['codebook_size'], embed_dim=t['embed_dim'])
    m.prior.ar.update(dim=t['dim'], n_layer=t['n_layer'], n_head=t['n_head'],
                      vocab_size=t['codebook_size'], block_size=(t['resolution'] // 2) ** 2,
                      num_classes=t['num_classes'], ffn_multiple_of=t['ffn_multiple_of'])
    m.prior.update(align_depth=t['align_depth'])
    m.prior.align_loss.projector_hidden_dim = t['projector_dim']
    m.teachers.effnet.update(grid_size=t['resolution'] // 2, image_size=t['teacher_image_size'])
    m.perceptual_loss = (dict(type='LPIPS', net='vgg', loss_weight=1.0, vgg_weights=vgg,
                              lin_weights=heads) if vgg else
                         dict(type='LPIPS', net='vgg', loss_weight=1.0, pretrained_source='none'))
    for name in ('tokenizer', 'discriminator', 'prior'):
        group = cfg.optim_wrapper[name]
        group.pop('loss_scale', None)
        if args.amp == 'bf16':
            group.update(type='GearAmpOptimWrapper', dtype='bfloat16')
        else:
            group.update(type='GearOptimWrapper')
            group.pop('dtype', None)
    cfg.train_dataloader.batch_size = args.batch_size
    return cfg


class GearStep:
    """gear's ``GEAR.train_step`` with its phases, teacher and tokenizer forward timed."""

    def __init__(self, cfg, device, timer_cls):
        self.model = MODELS.build(cfg.model).to(device).train()
        self.optim = build_optim_wrapper(self.model, cfg.optim_wrapper)
        for name, wrapper in self.optim.items():
            if isinstance(wrapper, DeferredGradNormMixin):
                wrapper.grad_norm_key = f'grad_norm/{name}'  # as LogSyncHook: no per-step sync
        self.timer = timer_cls(self.model, device)
        self.hub = MessageHub.get_current_instance()
        self.hub.update_info(LOG_INTERVAL_INFO, cfg.default_hooks.logger.interval)
        self._wrap_teacher_and_tokenizer()

    def _wrap_teacher_and_tokenizer(self) -> None:
        model, timer = self.model, self.timer
        teacher = model.teacher_features

        def timed_teacher(x):
            timer.sync()
            start = time.perf_counter()
            out = teacher(x)
            timer.sync()
            timer.times['teacher'] += time.perf_counter() - start
            return out
        model.teacher_features = timed_teacher
        starts = []

        def before(*_):  # returns None: the inputs are left as they are
            timer.sync()
            starts.append(time.perf_counter())

        def after(*_):
            timer.sync()
            timer.times['tokenizer_forward'] += time.perf_counter() - starts.pop()
        model.tokenizer.register_forward_pre_hook(before)
        model.tokenizer.register_forward_hook(after)

    def step(self, batch: dict, i: int) -> Dict[str, float]:
        self.hub.update_info('iter', STEP + i)
        self.timer.times.clear()
        self.model.train_step(batch, self.optim)
        for wrapper in self.optim.values():
            if isinstance(wrapper, DeferredGradNormMixin):
                wrapper.pop_grad_norms()
        return dict(self.timer.times)


# ---------------------------------------------------------------------- timing
def load_gear_benchmark():
    """tools/benchmark.py as a module (its PhaseTimer and synthetic_batch)."""
    import importlib.util
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark.py')
    spec = importlib.util.spec_from_file_location('gear_tools_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_steps(side, batches, offset: int, sync) -> tuple:
    """Mean seconds/step of ``side`` over ``batches`` and its mean seconds per phase."""
    phases = defaultdict(float)
    sync()
    start = time.perf_counter()
    for j, batch in enumerate(batches):
        for name, seconds in side.step(batch, offset + j).items():
            phases[name] += seconds
    sync()
    n = max(len(batches), 1)
    return (time.perf_counter() - start) / n, {k: v / n for k, v in phases.items()}


def count_flops(side, batch, offset: int) -> dict:
    """FLOPs of one step of ``side`` (forward and backward as executed), total and by op."""
    with flop_counter() as counter:
        side.step(batch, offset)
    by_op = {str(op).replace('aten.', ''): n
             for op, n in counter.get_flop_counts().get('Global', {}).items()}
    return dict(total=counter.get_total_flops(), by_op=by_op)


def profile_side(side, batches, offset: int, rows: int = 25) -> dict:
    """Top operators (self CPU time) of ``side`` over ``batches``."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for j, batch in enumerate(batches):
            side.step(batch, offset + j)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return dict(table=prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows),
                top=[dict(op=e.key, self_cpu_s=e.self_cpu_time_total / 1e6 / len(batches),
                          share=e.self_cpu_time_total / total, calls=e.count // len(batches))
                     for e in events[:rows]])


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    DefaultScope.get_instance('gear-benchmark-official', scope_name='gear')
    device = torch.device(args.device)
    bench = load_gear_benchmark()
    workdir = tempfile.mkdtemp(prefix='gear_bench_official_')
    try:
        use_files = 'official' in args.sides
        vgg = vgg_trunk_file(args, workdir) if use_files else None
        heads = lpips_heads_file() if use_files else None
        cfg = gear_config(args, vgg, heads)
        torch.manual_seed(args.seed)
        sides = {'gear': GearStep(cfg, device, bench.PhaseTimer)}
        if 'official' in args.sides:
            peer = import_peer(args.peer_dir)
            torch.manual_seed(args.seed)
            sides['official'] = OfficialStep(peer, TINY, cfg, sides['gear'].model.teachers['effnet'],
                                             args, device, vgg, heads, workdir, STEP)
        if 'gear' not in args.sides:
            del sides['gear']
        return measure(args, cfg, sides, bench, device)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(args, cfg, sides: dict, bench, device) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    sync = (torch.cuda.synchronize if device.type == 'cuda' else lambda: None)

    def draw(n):
        return [bench.synthetic_batch(cfg, SimpleNamespace(num_classes=TINY['num_classes']),
                                      device, gen) for _ in range(n)]
    warm = draw(args.warmup)
    for side in sides.values():
        timed_steps(side, warm, 0, sync)
    flops_batch = draw(1)[0]  # untimed: one step of each side under torch's FLOP counter
    flops = {name: count_flops(side, flops_batch, 10 ** 5) for name, side in sides.items()}
    rounds = {name: [] for name in sides}
    phases = {name: [] for name in sides}
    order = list(sides)
    for r in range(args.repeats):
        batches = draw(args.iters)
        for name in (order if r % 2 == 0 else order[::-1]):
            seconds, ph = timed_steps(sides[name], batches, args.warmup + r * args.iters, sync)
            rounds[name].append(seconds)
            phases[name].append(ph)
    results = {}
    for name in sides:
        best = min(range(args.repeats), key=lambda r: rounds[name][r])
        ph = dict(phases[name][best])
        ph['other'] = max(rounds[name][best] - sum(ph.values()), 0.0)
        results[name] = dict(seconds_per_step=rounds[name][best],
                             images_per_s=args.batch_size / rounds[name][best],
                             rounds_s=rounds[name], phase_time_s=ph,
                             flops_per_step=flops[name]['total'],
                             flops_by_op=flops[name]['by_op'])
    record = dict(
        amp=args.amp, batch_size=args.batch_size, iters=args.iters, repeats=args.repeats,
        warmup=args.warmup, sizes=TINY, config=CONFIG, peer_dir=args.peer_dir,
        peer_diagnostics=args.peer_diagnostics,
        lpips_vgg_weights=args.vgg_weights or ('seeded random VGG16' if 'official' in sides
                                               else "random (pretrained_source='none')"),
        device=str(device), device_name=device_name(device), torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(), results=results,
        params={name: sum(p.numel() for p in mods) for name, mods in param_groups(sides).items()})
    if len(sides) == 2:
        record['speedup_gear_over_official'] = (results['official']['seconds_per_step'] /
                                                results['gear']['seconds_per_step'])
    if args.profile:
        batches = draw(2)
        record['profile'] = {name: profile_side(side, batches, 10 ** 6) for name, side in
                             sides.items()}
    return record


def param_groups(sides: dict) -> dict:
    out = {}
    if 'gear' in sides:
        m = sides['gear'].model
        out.update(gear_tokenizer=list(m.tokenizer.parameters()),
                   gear_discriminator=list(m.discriminator.parameters()),
                   gear_prior=list(m.prior.parameters()))
    if 'official' in sides:
        o = sides['official']
        out.update(official_tokenizer=list(o.vq.parameters()),
                   official_discriminator=list(o.loss_fn.discriminator.parameters()),
                   official_prior=list(o.ar.parameters()) + list(o.projectors.parameters()))
    return out


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    record = run(args)
    profile = record.pop('profile', None)
    if profile:
        record['profile'] = {k: v['top'] for k, v in profile.items()}
        for name, p in profile.items():
            print(f'[benchmark] profile of {name} (2 steps):\n{p["table"]}')
    atomic_write_bytes(json.dumps(record, indent=2).encode(), args.out)
    for name, r in record['results'].items():
        phases = ', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in r['phase_time_s'].items())
        print(f'[benchmark] {name} ({args.amp}): {r["seconds_per_step"] * 1e3:.0f} ms/step, '
              f'{r["images_per_s"]:.2f} images/s ({phases})')
    if 'speedup_gear_over_official' in record:
        print(f'[benchmark] gear / official: {record["speedup_gear_over_official"]:.2f}x '
              f'-> {args.out}')


if __name__ == '__main__':
    main()
