# Stage 0, reference recipe (REFERENCE.md): Open-MAGVIT2 LFQ-16 warmed up on ImageNet 256 px from
# the public tokenizer weights (no discriminator): recon + LPIPS + GAN fine-tuning, entropy ratio
# 0.05 and commit 0.25, global batch 256, AdamW 1e-4, EMA 0.9999, 400k steps, bf16. For 8 GPUs:
#   torchrun --nproc_per_node 8 tools/train.py configs/tokenizer/tokenizer_lfq16_imagenet.py --launcher pytorch
_base_ = ['../_base_/models/lfq16.py', '../_base_/recipes/tokenizer_imagenet.py']

model = dict(
    tokenizer={{_base_._tokenizer}},
    # TencentARC's Open-MAGVIT2 LFQ-16 pretrain
    # (https://huggingface.co/TencentARC/Open-MAGVIT2-Tokenizer-16384-Pretrain, pretrain256_16384.ckpt):
    # a Lightning checkpoint, converted on load with its EMA weights; the EMA starts from them
    init_from=[dict(checkpoint='open-magvit2-lfq16', modules=dict(tokenizer='tokenizer'))])
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})  # 16384
test_evaluator = val_evaluator
