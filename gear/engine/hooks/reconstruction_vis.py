"""Write a PNG grid of inputs and their reconstructions at every validation (rank 0's first
validation batch: every rank validates its own shard, and only rank 0 writes)."""
import os
import os.path as osp

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from torchvision.utils import make_grid, save_image

from gear.registry import HOOKS


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """Saves ``{work_dir}/vis/recon_iter_{step:07d}.png``: inputs on the odd rows, their
    reconstructions below them; also sent to the visualiser (TensorBoard) as ``reconstruction``.

    Args:
        num_images (int): images taken from the first validation batch.
        nrow (int): images per row.
    """
    priority = 'LOW'

    def __init__(self, num_images: int = 32, nrow: int = 8):
        self.num_images = num_images
        self.nrow = nrow

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if batch_idx != 0 or not outputs or not is_main_process():
            return  # no collective below: other ranks may skip it
        n = min(self.num_images, len(outputs))
        gt = torch.stack([o['gt_img'] for o in outputs[:n]])      # (n, 3, H, W) in [-1, 1]
        pred = torch.stack([o['pred_img'] for o in outputs[:n]])  # (n, 3, H, W)
        rows = []
        for i in range(0, n, self.nrow):  # alternate a row of inputs, a row of reconstructions
            rows += [gt[i:i + self.nrow], pred[i:i + self.nrow]]
        images = (torch.cat(rows).float().clamp(-1, 1) + 1) / 2
        path = osp.join(runner.work_dir, 'vis', f'recon_iter_{runner.iter:07d}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        save_image(images, path, nrow=self.nrow, padding=1)
        grid = make_grid(images, nrow=self.nrow, padding=1)
        image = (grid.permute(1, 2, 0).numpy() * 255).round().astype('uint8')
        runner.visualizer.add_image('reconstruction', image, step=runner.iter)
