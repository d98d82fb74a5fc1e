"""Find a config file: as given, else inside the installed package, else in the source tree.

``pip install .`` copies ``configs/`` into the package as ``gear/.mim/configs`` (OpenMMLab's mim
convention), so ``python -m gear.train configs/gear/gear_vq_tiny_fashionmnist.py`` works from
any directory; an editable install or a checkout reads the repository's ``configs/``. A path
that exists relative to the working directory (or is absolute) always wins.
"""
import os.path as osp
from typing import List

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))  # .../gear


def config_roots() -> List[str]:
    """Where relative config paths are looked up after the working directory."""
    return [osp.join(PACKAGE_DIR, '.mim'), osp.dirname(PACKAGE_DIR)]


def find_config(path: str) -> str:
    """``path`` if it is a file, else the packaged (or source-tree) file of that relative path.

    Raises:
        FileNotFoundError: naming the path and every place searched.
    """
    if osp.isfile(path):
        return path
    searched = [osp.abspath(path)]
    if not osp.isabs(path):
        for root in config_roots():
            candidate = osp.join(root, path)
            if osp.isfile(candidate):
                return candidate
            searched.append(candidate)
    raise FileNotFoundError(f'config file not found: {path} (looked in {", ".join(searched)})')
