# A small LlamaGen GPT for the 8x8 tokens of vq_tiny.py (256 codes) and 10 classes.
_ar = dict(type='LlamaGenGPT', dim=128, n_layer=4, n_head=4, vocab_size=256, block_size=64,
           num_classes=10, ffn_multiple_of=64)  # SwiGLU hidden: find_multiple(341, 64) = 384
