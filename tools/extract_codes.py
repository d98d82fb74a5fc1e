"""Extract a stage-2 / baseline config's codes: a shim for ``python -m gear.extract_codes``
(``gear/extract_codes.py``; docs/codes.md).

    python tools/extract_codes.py configs/ar/baseline_vq_tiny_fashionmnist_codes.py
    torchrun --nproc-per-node 2 tools/extract_codes.py CONFIG     # the items sharded over ranks
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a checkout without install

from gear.extract_codes import main  # noqa: E402

if __name__ == '__main__':
    main()
