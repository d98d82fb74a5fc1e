# Text-to-image, the official GEAR GPIC recipe (scripts/train/train_t2i_gpic.sh,
# src/train_ar_t2i.py; values in docs/official_parity.md): a fresh caption-conditioned
# LlamaGen-1B (36 layers, 20 heads, dim 1440) + REPA (DINOv2 ViT-B, D = 12, projector 2048,
# coefficient 0.5) on the frozen stage-1 GEAR VQ-16 tokenizer (EMA); Qwen3-1.7B captions (300 tokens,
# bf16) through a bias-free MLP, the empty caption "" as the null caption (p = 0.1); AdamW 1e-4
# constant, batch 256, bf16, clip 1.0, 400k steps, a checkpoint every 50k.
#   torchrun --nproc_per_node 8 tools/train.py configs/ar/ar_vq_1b_gpic_t2i.py
_base_ = ['../_base_/models/vq16.py', '../_base_/recipes/ar_l_imagenet.py',
          '../_base_/text_encoders/qwen3_1p7b.py']
# the official VQ_STAGE1_CKPT: stage 1 trained with the XL AR (stage1-vq-dinov2-xl-...)
_stage1 = 'work_dirs/gear_vq_xl_imagenet/final.pth'
_max_iters = 400_000  # --max-train-steps
_ckpt_interval = 50_000  # --ckpt-every (the official COCO-FID interval too)

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    text_encoder={{_base_._text_encoder}},
    prior=dict(
        ar=dict(size=None, n_layer=36, n_head=20, dim=1440,  # --ar-model LlamaGen-1B
                caption_dim={{_base_._caption_dim}},
                cls_token_num={{_base_._text_encoder.max_length}},  # --text-max-len 300
                null_caption='empty', caption_mlp_bias=False,
                class_dropout_prob=0.1,  # caption dropout for CFG
                token_dropout_p=0.1, resid_dropout_p=0.1, ffn_dropout_p=0.1,  # --dropout-p 0.1
                drop_path_rate=0.0),
        align_depth=12,  # --encoder-depth 12
        align_loss=dict(projector_hidden_dim=2048)),  # --projector-dim 2048
    lambda_ar=0.5)  # --proj-coeff 0.5
train_cfg = dict(max_iters=_max_iters, val_interval=_ckpt_interval)
default_hooks = dict(checkpoint=dict(interval=_ckpt_interval))
# the GPIC shards replace ImageNet: same loader settings, (image, caption) pairs
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards='data/gpic/train-*.tar', resolution=256,
    pipeline=[dict(type='ResizeShortSide', interpolation='bicubic', backend='pillow'),
              dict(type='SquareCenterCrop'), dict(type='RandomHFlip', prob=0.5),  # --hflip
              dict(type='PackGearInputs')]))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards='data/gpic/val-*.tar', resolution=256,
    num_samples=1000))
test_dataloader = val_dataloader
