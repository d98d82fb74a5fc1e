"""Print model_zoo.md, generated from model-index.yml: ``python tools/print_model_zoo.py > model_zoo.md``."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from gear.utils.model_zoo_table import render_model_zoo  # noqa: E402

if __name__ == '__main__':
    sys.stdout.write(render_model_zoo())
