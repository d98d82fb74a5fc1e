# LlamaGen GPT-L (24 layers, 16 heads, dim 1024, 343M) over VQ-16 tokens: 16x16 = 256 tokens,
# 16384 codes, ImageNet's 1000 classes; dropouts as REFERENCE.md (AR, token, class: 0.1).
_ar = dict(type='LlamaGenGPT', size='L', vocab_size=16384, block_size=256, num_classes=1000,
           class_dropout_prob=0.1, token_dropout_p=0.1, resid_dropout_p=0.1, ffn_dropout_p=0.1)
