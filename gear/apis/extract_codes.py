"""Encode a dataset once with a frozen tokenizer: the pre-extracted codes of stage 2 and the
baseline (``tools/extract_codes.py``; the layout and keys in gear/datasets/codes_store.py).

    extract_codes(cfg, out=None, use_ema=True, ten_crop=False, batch_size=64, device=None)

``cfg`` is a stage-2 / baseline config. Its model (``FrozenTokenizerAR``) is built and
initialised as training initialises it (``init_from``: the earlier stage's EMA tokenizer;
``use_ema=False`` turns an ``'tokenizer_ema.module' -> tokenizer`` entry into the live
``'tokenizer' -> tokenizer``), so the codes are keyed by the weights a run will load. The source
is the config's train (or val) dataset; a codes config (``CodesDataset``) names the source and
the output root itself.

Each item is prepared by the source pipeline, which must be deterministic (a random transform
is refused: codes are computed once), and through the model's data preprocessor, as a training
batch is. Its views are encoded as separate batches of ``batch_size`` items (exactly a training
batch of those images): ``orig`` and ``flip`` by default; with ``ten_crop`` the item is prepared
at ``int(crop_range * resolution)`` px and cut into LlamaGen's ten crops. For each view the
tokens (``model.encode``) and the teachers' feature maps before their resampling to the token
grid (``model.teacher_maps``; a training step finishes them with ``teacher.targets_from_map``,
as ``teacher(x)`` does) are stored, in float32 without autocast, as stage 2 computes them
online.

The peer, LlamaGen's ``autoregressive/train/extract_codes_c2i.py``, stores per image the codes
of (image, flip) or of ten crops of a ``1.1 x`` centre crop, one ``.npy`` per image, with a
``DistributedSampler`` over ranks; it stores no teacher features, is not resumable and not keyed.

Under ``torchrun`` (gloo for the few collectives) every rank builds the model and checks that its
tokenizer hashes as rank 0's; rank 0 prepares ``{root}.partial``; rank r encodes chunks r, r + W,
r + 2W, ... that are not done yet into disjoint rows of the shared arrays; rank 0 renames the
directory when all chunks are done. A chunk is always the same items encoded as one batch, so
the arrays do not depend on the number of ranks or on interruptions
(tests/tools/test_extract_codes.py).
"""
import copy
import logging
import os
import os.path as osp
import shutil
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger, print_log
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from gear.datasets.codes_store import (DONE_DIR, FEATURE_DTYPES, FORMAT, META, VERSION,
                                       CodesError, canonical, config_diff, describe, done_chunks,
                                       index_dtype, mark_done, open_arrays, partial_dir,
                                       read_meta, write_meta)
from gear.models.init_from import check_init_from
from gear.registry import DATASETS, MODELS
from gear.utils.device import default_device
from gear.utils.distributed import init_process_group
from gear.version import __version__

CORNERS = ('tl', 'tr', 'bl', 'br', 'center')  # torchvision's five_crop order
TEN_CROP_VIEWS = [f'crop_{c}' for c in CORNERS] + [f'flip_crop_{c}' for c in CORNERS]
# What existing codes must agree on to be these codes (a mismatch is named): the keys, known
# before anything is encoded; an interrupted extraction also on its shapes and chunks.
KEYS = ('tokenizer_sha256', 'dataset', 'views', 'ten_crop')
LAYOUT = ('num_items', 'chunk_size', 'token_grid', 'codebook_size')


def _plain(cfg) -> dict:
    return copy.deepcopy(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg))


def source_dataset(cfg, split: str = 'train') -> Tuple[dict, Optional[str]]:
    """(source dataset config, codes root or None) of ``cfg``'s ``{split}_dataloader``."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise CodesError(f'{split}_dataloader.dataset: missing; the source of the codes')
    dataset = _plain(loader['dataset'])
    if dataset.get('type') == 'CodesDataset':
        return dataset['source'], dataset['root']
    return dataset, None


def check_deterministic(source: dict, where: str) -> None:
    for i, step in enumerate(source.get('pipeline') or []):
        name = step.get('type') if isinstance(step, dict) else None
        if isinstance(name, str) and name.startswith('Random'):
            raise CodesError(
                f'{where}.pipeline[{i}].type: {name!r} draws random numbers, but codes are '
                'encoded once: give the source a deterministic pipeline (e.g. the val pipeline, '
                'ResizeShortSide + SquareCenterCrop); the stored views (orig / flip, --ten-crop) '
                'are the augmentation')


def model_config(model_cfg, use_ema: bool) -> dict:
    """The model config, with the tokenizer taken from the live weights if not ``use_ema``."""
    cfg = _plain(model_cfg)
    if use_ema:
        return cfg
    entries, switched = check_init_from(cfg.get('init_from')), False
    for entry in entries:
        if entry['modules'].get('tokenizer_ema.module') == 'tokenizer':
            del entry['modules']['tokenizer_ema.module']
            entry['modules']['tokenizer'] = 'tokenizer'
            switched = True
    if not switched:
        raise CodesError("--no-ema: model.init_from loads no 'tokenizer_ema.module' into the "
                         'tokenizer, so there is no EMA to leave out')
    cfg['init_from'] = entries
    return cfg


def views_of(x: Tensor, ten_crop: Optional[dict], size: int) -> List[Tensor]:
    """The views of images x (B, 3, S, S): [x, mirror] or ten (B, 3, size, size) crops."""
    if ten_crop is None:
        return [x, x.flip(-1)]
    s = x.shape[-1]
    c = int(round((s - size) / 2.0))  # torchvision's centre offset
    offsets = [(0, 0), (0, s - size), (s - size, 0), (s - size, s - size), (c, c)]
    crops = [x[..., t:t + size, u:u + size] for t, u in offsets]  # (B, 3, size, size) each
    return crops + [crop.flip(-1) for crop in crops]


def build_model(model_cfg, use_ema: bool, device: str):
    """The model as training initialises it (``init_from``), in eval mode on ``device``."""
    model = MODELS.build(model_config(model_cfg, use_ema))
    if not hasattr(model, 'codes_keys'):
        raise CodesError(f'model.type: {type(model).__name__} has no frozen tokenizer to '
                         'extract codes with (FrozenTokenizerAR has)')
    logger = MMLogger.get_current_instance()  # without a log file mmengine would print every
    level = logger.level                      # parameter's initialisation
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    print_log(f'tokenizer: {model.tokenizer_source()}', logger='current')
    return model.to(device).eval()


def _distributed(timeout_s) -> Tuple[int, int]:
    if int(os.environ.get('WORLD_SIZE', 1)) > 1 and not dist.is_initialized():
        init_process_group('gloo', timeout_s)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _from_rank0(value):
    """Rank 0's ``value`` on every rank (itself in one process)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def codes_keys(model, source: dict, views: List[str], ten_crop: Optional[dict],
               feature_dtype: str) -> dict:
    """What these codes are keyed by (part of their meta.json)."""
    keys = model.codes_keys()
    return dict(tokenizer_sha256=keys['tokenizer_sha256'],
                tokenizer_source=model.tokenizer_source(), dataset=canonical(source),
                views=list(views), ten_crop=ten_crop,
                teachers={n: dict(t, dtype=feature_dtype) for n, t in keys['teachers'].items()})


def _mismatch(stored: dict, fresh: dict, keys=KEYS) -> List[str]:
    """'key: stored vs fresh' for each key (and teacher entry of ``fresh``) that differs."""
    diff = [d for k in keys for d in config_diff(stored.get(k), fresh.get(k), k)]
    if sorted(stored['teachers']) != sorted(fresh['teachers']):
        return diff + [f"teachers: {sorted(stored['teachers'])} vs {sorted(fresh['teachers'])}"]
    return diff + [f'teachers.{n}.{k}: {stored["teachers"][n].get(k)!r} vs {v!r}'
                   for n, entry in sorted(fresh['teachers'].items())
                   for k, v in sorted(entry.items()) if k in ('fingerprint', 'dtype', 'shape')
                   and stored['teachers'][n].get(k) != v]


def describe_meta(keys: dict, model, dataset, split: str, batch_size: int,
                  probe: Tensor) -> dict:
    """meta.json of these codes; shapes from one probe batch of views (V, 3, R, R)."""
    grid = list(model.tokenizer.encode(probe).indices.shape[1:])  # (h, w)
    feats = model.teacher_maps(probe)  # {name: (V, C, h', w')}
    n, v, length = len(dataset), len(keys['views']), grid[0] * grid[1]
    k = int(model.tokenizer.codebook_size)
    teachers = {name: dict(keys['teachers'][name], file=f'teacher_{name}.npy',
                           shape=[n, v, *map(int, f.shape[1:])],
                           computed_dtype=str(f.dtype).replace('torch.', ''))
                for name, f in feats.items()}
    return dict(keys, format=FORMAT, version=VERSION, gear_version=__version__, split=split,
                num_items=n, chunk_size=batch_size, num_chunks=-(-n // batch_size),
                token_grid=grid, codebook_size=k,
                indices=dict(file='indices.npy', shape=[n, v, length], dtype=index_dtype(k)),
                labels=dict(file='labels.npy', shape=[n], dtype='int64'), teachers=teachers,
                metainfo=canonical(getattr(dataset, 'metainfo', {}) or {}),
                precision='float32, no autocast')


def prepare(partial: str, meta: dict) -> None:
    """Rank 0: allocate a new partial extraction, or check that the one there is this one."""
    if osp.isfile(osp.join(partial, META)):
        diff = _mismatch(read_meta(partial), meta, KEYS + LAYOUT)
        if diff:
            raise CodesError(f'{partial} holds an interrupted extraction of other codes ('
                             f'{"; ".join(diff[:3])}: stored vs now); delete it to start over')
        print_log(f'resuming {partial}: {len(done_chunks(partial))} of {meta["num_chunks"]} '
                  'chunks already done', logger='current')
        return
    if osp.isdir(partial):  # interrupted before its meta.json: nothing in it is usable
        shutil.rmtree(partial)
    os.makedirs(osp.join(partial, DONE_DIR))
    specs = (meta['indices'], meta['labels'], *meta['teachers'].values())
    need = sum(int(np.prod(s['shape'])) * np.dtype(s['dtype']).itemsize for s in specs)
    free = shutil.disk_usage(partial).free
    if need > free:
        shutil.rmtree(partial)
        raise CodesError(f'{partial}: the codes need {need / 1e9:.2f} GB, its disk has '
                         f'{free / 1e9:.2f} GB free; store the teacher features in float16 '
                         '(--feature-dtype float16) or encode fewer items (e.g. '
                         'train_dataloader.dataset.source.num_samples)')
    print_log(f'extracting {describe(meta)} into {partial}: {need / 1e9:.2f} GB',
              logger='current')
    for spec in specs:
        np.lib.format.open_memmap(osp.join(partial, spec['file']), mode='w+',  # sparse files
                                  dtype=spec['dtype'], shape=tuple(spec['shape'])).flush()
    write_meta(partial, meta)  # last: its presence says the arrays are allocated


def encode_chunks(model, dataset, partial: str, meta: dict, chunks: List[int],
                  num_workers: int, size: int, bar) -> None:
    """Encode ``chunks`` (each: ``chunk_size`` consecutive items as one batch) into their rows
    of the arrays in ``partial``; mark each done once its rows are on disk."""
    arrays = open_arrays(partial, meta, mode='r+')
    step = meta['chunk_size']
    rows = [list(range(c * step, min(len(dataset), (c + 1) * step))) for c in chunks]
    loader = DataLoader(dataset, batch_sampler=rows, num_workers=num_workers,
                        collate_fn=default_collate)
    for chunk, index, batch in zip(chunks, rows, loader):
        data = model.data_preprocessor(batch, False)
        xs = views_of(data['img'], meta['ten_crop'], size)  # V x (B, 3, R, R)
        feats = [model.teacher_maps(x) for x in xs]  # V x {name: (B, C, h', w')}
        where = slice(index[0], index[-1] + 1)
        arrays['indices'][where] = torch.stack([model.encode(x) for x in xs], 1).cpu().numpy()
        arrays['labels'][where] = data['label'].cpu().numpy()  # (B, V, L) above, (B,) here
        for name in meta['teachers']:
            arrays[f'teacher/{name}'][where] = torch.stack(
                [f[name] for f in feats], 1).float().cpu().numpy()  # (B, V, C, h', w')
        for arr in arrays.values():
            arr.flush()  # the rows are on disk before the marker says so
        mark_done(partial, chunk)
        bar.update(1)


@torch.no_grad()
def extract_codes(cfg, out: Optional[str] = None, *, split: str = 'train', use_ema: bool = True,
                  ten_crop: bool = False, crop_range: float = 1.1, batch_size: int = 64,
                  device: Optional[str] = None, num_workers: Optional[int] = None,
                  feature_dtype: str = 'float32', progress: bool = True) -> str:
    """Extract (or complete, or confirm) the codes of ``cfg``; returns their root."""
    source, root = source_dataset(cfg, split)
    root = out or root
    if not root:
        raise CodesError(f'{split}_dataloader.dataset is not a CodesDataset, so it names no '
                         'codes root: give one with --out')
    if feature_dtype not in FEATURE_DTYPES:
        raise CodesError(f'--feature-dtype: one of {FEATURE_DTYPES}, got {feature_dtype!r}')
    if batch_size < 1:
        raise CodesError(f'--batch-size: a positive number of items, got {batch_size}')
    check_deterministic(source, f'{split}_dataloader.dataset')
    size = int(source.get('resolution') or 0)
    if ten_crop and not size:
        raise CodesError(f'--ten-crop: {split}_dataloader.dataset has no resolution to crop to')
    crop = (dict(crop_range=float(crop_range), crop_size=int(size * crop_range)) if ten_crop
            else None)
    rank, world = _distributed(((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout'))
    device = device or default_device()
    if device == 'cuda' and world > 1:
        device = f'cuda:{os.environ.get("LOCAL_RANK", 0)}'

    model = build_model(cfg.model, use_ema, device)
    keys = codes_keys(model, source, TEN_CROP_VIEWS if ten_crop else ['orig', 'flip'], crop,
                      feature_dtype)
    first = _from_rank0(keys['tokenizer_sha256'])
    if first != keys['tokenizer_sha256']:
        raise CodesError(f'rank {rank}: the tokenizer hashes {keys["tokenizer_sha256"]}, rank '
                         f'0\'s {first}: the ranks read different checkpoints')
    if osp.isfile(osp.join(root, META)):  # complete: these codes, or an error
        diff = _mismatch(read_meta(root), keys)
        if diff:
            raise CodesError(f'{root} holds other codes ({"; ".join(diff[:3])}: stored vs now); '
                             'delete it or give another --out')
        print_log(f'{root} is complete ({describe(read_meta(root))}); nothing to do',
                  logger='current')
        return root

    dataset = DATASETS.build(dict(source, resolution=crop['crop_size']) if crop else source)
    if len(dataset) == 0:
        raise CodesError(f'{split}_dataloader.dataset is empty: no codes to extract')
    first_item = model.data_preprocessor(default_collate([dataset[0]]), False)['img']
    meta = describe_meta(keys, model, dataset, split, batch_size,
                         torch.cat(views_of(first_item, crop, size)))  # probe (V, 3, R, R)
    partial, error = partial_dir(root), None
    if rank == 0:
        try:
            prepare(partial, meta)
        except (CodesError, OSError) as e:
            error = str(e)
    error = _from_rank0(error)
    if error:
        raise CodesError(error)
    done = done_chunks(partial)
    mine = [c for c in range(rank, meta['num_chunks'], world) if c not in done]
    workers = num_workers if num_workers is not None else (
        (cfg.get(f'{split}_dataloader') or {}).get('num_workers', 0))
    with tqdm(total=len(mine), desc=f'codes rank 0/{world}',
              disable=rank != 0 or not progress) as bar:
        encode_chunks(model, dataset, partial, read_meta(partial), mine, workers, size, bar)
    if world > 1:
        dist.barrier()
    if rank == 0:
        missing = sorted(set(range(meta['num_chunks'])) - done_chunks(partial))
        if missing:
            raise CodesError(f'{partial}: chunks {missing[:5]} are not done; rerun to complete')
        os.rename(partial, root)  # atomic: root appears complete
        shutil.rmtree(osp.join(root, DONE_DIR), ignore_errors=True)
        print_log(f'codes written to {root}: {describe(meta)}', logger='current')
    if world > 1:
        dist.barrier()
    return root
