"""Sources of ``(key, image bytes, ext, caption)`` samples for :func:`write_caption_shards`.

- :func:`folder_samples`: a folder of images, captioned by a JSON-lines file
  (``{"file": relative path, "caption": ...}`` per line) or by per-image text files (``cat.jpg``
  -> ``cat.txt`` beside it, the common convention of captioned image folders).
- :func:`fashion_mnist_samples`: the CPU demo set. Each Fashion-MNIST image is padded from
  28 x 28 to 32 x 32 with 2 px of black on every side (exactly what ``CenterPad`` does for the
  class-conditional configs, so the default ``CaptionShards`` pipeline at resolution 32 is the
  identity on its pixels), PNG-encoded (grey), and captioned from its class name with one of
  :data:`TEMPLATES`, chosen deterministically from a seed and the image index.

The Fashion-MNIST captions carry nothing but the class: the demo set tests the machinery (text
conditioning end to end: shards, tokenizer, text encoder, cross-attention or prefix, CFG), not
text understanding. A model that learns it has learnt ten prompts.
"""
import io
import json
import os
import random
from typing import Iterator, Optional, Tuple

import numpy as np
from PIL import Image

from .caption_shards import IMAGE_EXTS
from .fashion_mnist import CLASSES, load_fashion_mnist
from .utils import is_image_file

#: Caption names of Fashion-MNIST's classes, in label order (:data:`.fashion_mnist.CLASSES`).
CAPTION_NAMES = ('t-shirt', 'pair of trousers', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                 'sneaker', 'bag', 'ankle boot')
assert len(CAPTION_NAMES) == len(CLASSES)
#: ``{a}``: the name with its article ("an ankle boot"); ``{name}``: the bare name.
TEMPLATES = ('a photo of {a}', '{a} on a black background', 'a grey {name}',
             'a picture of {a}, centered', 'a small greyscale image of {a}')
Sample = Tuple[str, bytes, str, str]


def fashion_mnist_caption(label: int, index: int, seed: int = 0) -> str:
    """The caption of image ``index`` of class ``label``; the template is drawn from a generator
    seeded with ``(seed, index)`` (string seeding: the same on every run and platform)."""
    name = CAPTION_NAMES[label]
    a = ('an ' if name[0] in 'aeiou' else 'a ') + name
    template = random.Random(f'{seed}:{index}').choice(TEMPLATES)
    return template.format(a=a, name=name)


def png_bytes(img: np.ndarray) -> bytes:
    """A ``uint8`` (H, W) or (H, W, 3) array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='PNG')
    return buf.getvalue()


def fashion_mnist_samples(data_root: str, split: str = 'train', num: Optional[int] = None,
                          seed: int = 0) -> Iterator[Sample]:
    """Fashion-MNIST ``split`` as ``(key, PNG bytes (32 x 32 grey), 'png', caption)``.

    Keys are ``fmnist-{split}-{index:06d}`` (the index into the idx files).

    Args:
        data_root: folder of the four idx files (``/usr/share/datasets/fashion-mnist``).
        split: ``'train'`` (60000) or ``'test'`` (10000).
        num: the first ``num`` images only (all when ``None``).
        seed: picks each image's caption template with its index.
    """
    images, labels = load_fashion_mnist(data_root, split)
    n = len(labels) if num is None else min(int(num), len(labels))
    for i in range(n):
        padded = np.pad(images[i], 2)  # (32, 32): 2 px of 0 on every side, as CenterPad
        yield (f'fmnist-{split}-{i:06d}', png_bytes(padded), 'png',
               fashion_mnist_caption(int(labels[i]), i, seed))


def _key_of(rel: str) -> str:
    """A webdataset key from a relative image path: the extension dropped, other dots -> ``_``
    (webdataset splits member names at the first dot), spaces -> ``_``."""
    stem = os.path.splitext(rel.replace(os.sep, '/'))[0]
    head, base = os.path.split(stem)
    base = base.replace('.', '_').replace(' ', '_')
    return f'{head.replace(" ", "_")}/{base}' if head else base


def _image(path: str) -> Tuple[bytes, str]:
    """``(bytes, ext)`` of an image file: as stored when webdataset-decodable, else PNG."""
    ext = os.path.splitext(path)[1].lower().lstrip('.')
    with open(path, 'rb') as f:
        data = f.read()
    if ext in IMAGE_EXTS:
        return data, ext
    try:
        with Image.open(io.BytesIO(data)) as im:
            return png_bytes(np.array(im.convert('RGB'))), 'png'
    except Exception as e:
        raise ValueError(f'cannot read image {path}: {type(e).__name__}: {e}') from e


def _jsonl(captions: str) -> Iterator[Tuple[str, str]]:
    with open(captions, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rel, caption = row['file'], row['caption']
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f'{captions} line {n}: expected {{"file": relative path, '
                                 f'"caption": str}}, got {line.strip()[:80]!r} ({e!r})') from e
            yield rel, caption


def _sidecar_txt(images: str) -> Iterator[Tuple[str, str]]:
    rels = sorted(os.path.relpath(os.path.join(d, n), images)
                  for d, _, names in os.walk(images) for n in names if is_image_file(n))
    if not rels:
        raise FileNotFoundError(f'no image files under {images}')
    for rel in rels:
        txt = os.path.splitext(os.path.join(images, rel))[0] + '.txt'
        if not os.path.isfile(txt):
            raise FileNotFoundError(f'image {os.path.join(images, rel)} has no caption file '
                                    f'{txt} (or give --captions FILE.jsonl)')
        with open(txt, encoding='utf-8') as f:
            yield rel, f.read().strip()


def folder_samples(images: str, captions: Optional[str] = None) -> Iterator[Sample]:
    """The captioned images of folder ``images`` as ``(key, bytes, ext, caption)``.

    Args:
        images: the image folder (searched recursively without ``captions``).
        captions: a JSON-lines file, one ``{"file": path relative to images, "caption": str}``
            a line, in the order to write; ``None``: every image under ``images`` (sorted) with
            its ``<stem>.txt`` beside it.
    """
    if not os.path.isdir(images):
        raise FileNotFoundError(f'image folder {images} does not exist')
    for rel, caption in (_sidecar_txt(images) if captions is None else _jsonl(captions)):
        path = os.path.join(images, rel)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{captions}: file {rel!r} not found ({path})')
        data, ext = _image(path)
        yield _key_of(rel), data, ext, caption
