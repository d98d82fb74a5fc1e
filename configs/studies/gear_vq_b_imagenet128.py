# The study at GPU scale: ImageNet (or a class subset in the same folder layout, e.g. ImageNet-100)
# at 128 px = 8x8 tokens of VQ-16, LlamaGen GPT-B (D = 4), DINOv2 ViT-B/14 at 112 px = 8x8
# patches, 3 seeds and the same ablations as the CPU study. bf16 (the recipes' AmpOptimWrapper).
#   python tools/study.py configs/studies/gear_vq_b_imagenet128.py
# Stage 0 starts from LlamaGen's released VQ-16 (the zoo name llamagen-vq16, see the model zoo);
# the teacher comes from the hub or model.teachers.dinov2.weights. Budget per arm and seed on one
# H100: stage 1 20k steps at batch 64, the fresh AR 50k steps at batch 64 (scale to taste below).
_base_ = ['./gear_vq_tiny_fashionmnist.py']
work_dir = 'work_dirs/study_gear_vq_b_imagenet128'
warmup = 'configs/tokenizer/tokenizer_vq16_imagenet.py'
stage1 = 'configs/gear/gear_vq_b_imagenet.py'
ar = 'configs/ar/ar_vq_b_imagenet_vqonly.py'
_data_root = 'data/imagenet'
_data = {'train_dataloader.dataset.data_root': _data_root,
         'val_dataloader.dataset.data_root': _data_root,
         'train_dataloader.dataset.resolution': 128, 'val_dataloader.dataset.resolution': 128,
         'global_batch_size': 64}
_tokens = {'model.teachers.dinov2.image_size': 112, 'model.teachers.dinov2.grid_size': 8,
           'model.prior.ar.block_size': 64}  # 8x8 tokens, 8x8 teacher patches
_schedule = {'train_cfg.val_interval': 5000, 'default_hooks.checkpoint.interval': 5000}
stage_options = dict(
    _delete_=True,
    warmup={**_data, **_schedule, 'train_cfg.max_iters': 20000},
    stage1={**_data, **_tokens, **_schedule, 'train_cfg.max_iters': 20000},
    ar={**_data, **_tokens, **_schedule, 'train_cfg.max_iters': 50000},
)
jobs = 1  # one GPU: one stage at a time
evaluate = dict(
    _delete_=True,
    seeds=[0, 1, 2],
    dataset=dict(type='ImageNetFolder', data_root=_data_root, split='val', resolution=128,
                 random_crop=False, hflip=False),
    per_class=10,  # x 1000 classes = 10k samples per AR
    reference_images=10000,
    tokenizer_images=10000,
    analysis_images=256,
    sampling=dict(cfg_scale=1.0, temperature=1.0, top_k=0, top_p=1.0, seed=0, use_ema=True),
    resize_filter='bilinear',  # the ADM evaluator's TF resize
    cache_dir='work_dirs/fid_cache',
    device='cuda',
)
