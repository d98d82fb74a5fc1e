"""Building a dataset's ``pipeline`` (a list of transform configs) and running it on one sample.

Each config is resolved in ``gear.registry.TRANSFORMS`` (gear's transforms, then mmengine's
registry, where mmcv's live). A transform class with a ``resolution_arg`` (gear's sized
transforms) whose config leaves that argument out gets the dataset's ``resolution``, so
``dataset.resolution`` stays the one size to set (and to override with ``--cfg-options``).
"""
import difflib
from typing import Optional, Sequence

from mmcv.transforms import Compose

from gear.registry import TRANSFORMS

from . import transforms  # noqa: F401  (registers gear's transforms and imports mmcv's)


def _known_transforms():
    names = set(TRANSFORMS.module_dict)
    if TRANSFORMS.parent is not None:
        names.update(TRANSFORMS.parent.module_dict)
    return sorted(names)


def build_pipeline(pipeline: Sequence[dict], resolution: Optional[int], owner: str) -> Compose:
    """``mmcv.transforms.Compose`` of the transforms configured in ``pipeline``.

    Args:
        pipeline: transform configs, each a dict with a ``type``.
        resolution: fills the ``resolution_arg`` of a sized transform whose config omits it.
        owner: who the pipeline belongs to (e.g. ``'ImageNetFolder'``), named in errors.

    Raises:
        ValueError: naming ``pipeline[i]`` and the fault: not a dict, no ``type``, a type
            registered nowhere (with the closest name), or arguments the transform rejects.
    """
    if isinstance(pipeline, (str, dict)) or not isinstance(pipeline, Sequence):
        raise ValueError(f'{owner}.pipeline: expected a list of transform configs, got '
                         f'{type(pipeline).__name__}')
    built = []
    for i, cfg in enumerate(pipeline):
        where = f'{owner}.pipeline[{i}]'
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f"{where}: expected a dict with a 'type' key, got {cfg!r}")
        cfg = dict(cfg)
        type_ = cfg.pop('type')
        cls = TRANSFORMS.get(type_) if isinstance(type_, str) else type_
        if cls is None:
            hint = difflib.get_close_matches(str(type_), _known_transforms(), n=1)
            hint = f'; did you mean {hint[0]!r}?' if hint else ''
            raise ValueError(f'{where}.type: {type_!r} is not a registered transform (gear or '
                             f'mmcv){hint}')
        key = getattr(cls, 'resolution_arg', None)
        if key is not None and cfg.get(key) is None and resolution is not None:
            cfg[key] = int(resolution)
        try:
            built.append(cls(**cfg))
        except Exception as e:
            raise ValueError(f'{where} ({getattr(cls, "__name__", type_)}): {type(e).__name__}: '
                             f'{e}') from e
    return Compose(built)


def run_pipeline(pipeline: Compose, results: dict, what: str) -> dict:
    """Apply ``pipeline`` to ``results``; an error is annotated with the step and ``what``.

    Args:
        pipeline: from :func:`build_pipeline`.
        results: the sample's starting dict (e.g. ``img_path`` and ``label``).
        what: the sample, named in errors (e.g. ``'ImageNetFolder item 3 (/data/x.JPEG)'``).
    """
    for i, t in enumerate(pipeline.transforms):
        try:
            results = t(results)
        except Exception as e:
            if hasattr(e, 'add_note'):  # Python >= 3.11
                e.add_note(f'in pipeline[{i}] {t!r} on {what}')
            raise
        if results is None:
            raise ValueError(f'pipeline[{i}] {t!r} returned None on {what}; gear datasets do '
                             'not skip samples')
    return results


def _keys(item) -> str:
    return f'keys {sorted(item)}' if isinstance(item, dict) else type(item).__name__


def check_packed(item: dict, resolution: int, what: str) -> dict:
    """``item`` (a :class:`~.transforms.PackGearInputs` output) if its image is (3, R, R)."""
    img = item.get('img') if isinstance(item, dict) else None
    shape = tuple(getattr(img, 'shape', ()))
    if shape != (3, resolution, resolution) or 'label' not in item:
        raise ValueError(f'{what}: the pipeline must end in PackGearInputs and give img of shape '
                         f'(3, {resolution}, {resolution}) (resolution={resolution}), got '
                         f'{"img of shape " + str(shape) if img is not None else _keys(item)}')
    return item
