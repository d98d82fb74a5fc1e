# Stage 1, GEAR joint, reference recipe (REFERENCE.md) with the Open-MAGVIT2 LFQ-16 tokenizer: + PatchGAN +
# LlamaGen GPT-L (+ REPA projector) on ImageNet 256 px, DINOv2 ViT-B/14 teacher, tau 0.1,
# lambda 0.5, lambda_ar 0.5, D = 8, global batch 256, AdamW 1e-4, EMA 0.9999, 400k steps, bf16.
#   torchrun --nproc_per_node 8 tools/train.py configs/gear/gear_lfq_l_imagenet.py --launcher pytorch
# Starts from stage 0 (configs/tokenizer/tokenizer_lfq16_imagenet.py).
# The released Warmup-LFQ instead, as the official --stage0-init-ckpt (tokenizer, its EMA
#   and the discriminator): --cfg-options model.init_from.0.checkpoint=warmup-lfq16
_base_ = ['../_base_/models/lfq16.py', '../_base_/recipes/gear_l_imagenet.py']
_stage0 = 'work_dirs/tokenizer_lfq16_imagenet/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage0, modules=dict(
        tokenizer='tokenizer', tokenizer_ema='tokenizer_ema', discriminator='discriminator'))])
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})  # 16384
test_evaluator = val_evaluator
