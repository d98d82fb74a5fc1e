"""Train any gear stage from its config: a shim for ``python -m gear.train`` (``gear/train.py``).

    python tools/train.py configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a checkout without install

from gear.train import main  # noqa: E402

if __name__ == '__main__':
    main()
