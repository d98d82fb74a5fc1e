"""Sample images from a trained gear model (stage 1 or 2), class- or caption-conditional.

    python tools/sample.py work_dirs/gear_vq_tiny_fashionmnist/final.pth --cfg-scale 2.0
    python tools/sample.py CKPT --per-class 50 --top-k 0 --top-p 1.0 --seed 0  # 50k on ImageNet
    python tools/sample.py work_dirs/x/iter_200.pth --config configs/ar/x.py --num-samples 64

Writes ``{out}/samples.npz`` (the ADM evaluator's layout: arr_0 uint8 (N, H, W, 3), arr_1
labels), ``{out}/grid.png`` (the first 100 images, 10 per row) and ``{out}/sampling.json`` (every
sampling setting, the checkpoint and its sha256, N, wall time). Default ``out``: beside the
checkpoint, ``samples_<settings tag>/``.

    torchrun --nproc-per-node 8 tools/sample.py CKPT --num-samples 50000 --labels uniform
    python tools/sample.py T2I_CKPT --prompts prompts.txt --cfg-scale 4.0 --top-k 2000

Text-to-image: ``--prompts FILE`` (one prompt per line, blank lines skipped; ``--repeats R``
images per prompt, prompt by prompt) instead of the label options; CFG's null condition is the
AR's null caption. ``samples.npz`` then holds arr_0 only, ``prompts.json`` the N prompts in
order, and ``grid.png`` the images in that order, 10 per row.

Under ``torchrun`` the batches are sharded over the ranks (nccl, one GPU per rank, on CUDA;
gloo on the CPU) and gathered: the same images as one process with the same settings. Rank 0
writes the files and shows the progress bar (stderr; ``--no-progress``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout


from gear.apis.cli import (HelpFormatter, add_label_args, add_progress_arg,  # noqa: E402
                           add_sampling_args, label_request, sampling_settings)
from gear.apis.loading import load_model  # noqa: E402
from gear.evaluation.sampling import make_labels, sample_images, save_grid, save_npz  # noqa: E402
from gear.models.generator import generator_parts  # noqa: E402
from gear.utils.checkpoint import CheckpointError, atomic_write_bytes, file_sha256  # noqa: E402
from gear.utils.distributed import process_group_from_environment, world_size  # noqa: E402
from gear.utils.progress import is_rank_zero  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Sample images from a gear AR checkpoint.',
                                     formatter_class=HelpFormatter)
    parser.add_argument('checkpoint', help='final.pth (weights file) or iter_N.pth with --config')
    parser.add_argument('--config', help='config of the run (needed for a training checkpoint)')
    parser.add_argument('--out', help='output folder (default: beside the checkpoint, '
                        'samples_<settings tag>/)')
    add_label_args(parser)
    parser.add_argument('--prompts', help='text-to-image: a file of prompts, one per line')
    parser.add_argument('--repeats', type=int, default=1,
                        help='with --prompts: images per prompt (prompt by prompt)')
    add_sampling_args(parser)
    add_progress_arg(parser)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    with process_group_from_environment(args.device) as device:
        sample(args, device)


def read_prompts(path: str, repeats: int = 1) -> list:
    """The prompts of ``path`` (one per line, blank lines skipped), each ``repeats`` times."""
    if repeats < 1:
        sys.exit(f'--repeats must be >= 1, got {repeats}')
    try:
        with open(path, encoding='utf-8') as f:
            prompts = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f'cannot read --prompts {path}: {e}')
    if not prompts:
        sys.exit(f'--prompts {path} holds no prompt (one per line)')
    return [p for p in prompts for _ in range(repeats)]


def text_encoder_record(model) -> dict:
    """What encoded the prompts (None for a class-conditional model)."""
    enc = getattr(model, 'text_encoder', None)
    if enc is None:
        return None
    return dict(type=type(enc).__name__, path=getattr(enc, 'path', None),
                max_length=enc.max_length, fingerprint=enc.fingerprint()[:16],
                null_caption=model.prior.ar.cls_embedding.null_caption)


def sample(args, device: str) -> None:
    """Sample on every rank (sharded under torchrun); rank 0 writes the files."""
    settings, request = sampling_settings(args), label_request(args)
    try:
        model = load_model(args.checkpoint, args.config, device=device)
        ar, _ = generator_parts(model, settings.use_ema)
    except (CheckpointError, TypeError) as e:
        sys.exit(f'cannot sample from {args.checkpoint}: {e}')
    if args.prompts and getattr(ar, 'caption_dim', None) is None:
        sys.exit(f'{args.checkpoint} is class-conditional: --prompts needs a text-to-image '
                 'model (one trained with model.text_encoder)')
    if args.prompts:
        labels = read_prompts(args.prompts, args.repeats)  # N prompts
    elif getattr(ar, 'caption_dim', None) is not None:
        sys.exit(f'{args.checkpoint} is a text-to-image model: give --prompts FILE')
    else:
        labels = make_labels(ar.num_classes, seed=settings.seed, **request)  # (N,)
    out = args.out or osp.join(osp.dirname(osp.abspath(args.checkpoint)),
                               f'samples_{settings.tag()}')
    if is_rank_zero():
        os.makedirs(out, exist_ok=True)
    n = len(labels)
    start = time.perf_counter()
    images = sample_images(model, labels, settings, device, progress=not args.no_progress)
    wall = time.perf_counter() - start
    if not is_rank_zero():
        return
    prompts = labels if args.prompts else None
    save_npz(images, None if prompts else labels, osp.join(out, 'samples.npz'))
    if prompts:
        atomic_write_bytes(json.dumps(prompts, indent=1).encode(), osp.join(out, 'prompts.json'))
    save_grid(images, osp.join(out, 'grid.png'))
    ranks = world_size()
    record = dict(settings.to_dict(), checkpoint=osp.abspath(args.checkpoint),
                  checkpoint_sha256=file_sha256(args.checkpoint)[:16], config=args.config,
                  model=type(model).__name__, num_samples=n, num_classes=ar.num_classes,
                  label_mode='prompts' if prompts else request['label_mode'],
                  per_class=None if prompts else request['per_class'],
                  prompts_file=args.prompts and osp.abspath(args.prompts),
                  repeats=args.repeats if prompts else None,
                  text_encoder=text_encoder_record(model),
                  image_shape=list(images.shape[1:]), device=device, world_size=ranks,
                  wall_time_s=wall, images_per_s=n / wall)
    atomic_write_bytes(json.dumps(record, indent=2).encode(), osp.join(out, 'sampling.json'))
    print(f'[sample] {n} images in {wall:.1f}s ({n / wall:.2f} images/s, {ranks} '
          f'process{"es" if ranks > 1 else ""}) -> {out}')


if __name__ == '__main__':
    main()
