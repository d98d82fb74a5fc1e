# Stage 0, reference recipe (REFERENCE.md): LlamaGen VQ-16 warmed up on ImageNet 256 px from the
# public LlamaGen tokenizer weights (which lack a discriminator): recon + LPIPS + GAN fine-tuning,
# global batch 256, AdamW 1e-4, EMA 0.9999, 400k steps, bf16. For 8 GPUs:
#   torchrun --nproc_per_node 8 tools/train.py configs/tokenizer/tokenizer_vq16_imagenet.py --launcher pytorch
_base_ = ['../_base_/models/vq16.py', '../_base_/recipes/tokenizer_imagenet.py']

model = dict(
    tokenizer={{_base_._tokenizer}},
    # LlamaGen's released VQ-16 (https://huggingface.co/FoundationVision/LlamaGen, vq_ds16_c2i.pt),
    # converted on load; the EMA starts from the same weights
    init_from=[dict(checkpoint='llamagen-vq16', modules=dict(tokenizer='tokenizer'))])
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})  # 16384
test_evaluator = val_evaluator
