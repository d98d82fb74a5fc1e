# A small LlamaGen-style VQ tokenizer for 32 px images on a CPU: 4x downsampling (8x8 tokens),
# 256 codes of dimension 8 on the unit sphere.
_tokenizer = dict(
    type='VQTokenizer',
    ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=32,  # 2 downsamplings: 32 px -> 8x8
    quantizer=dict(type='VectorQuantizer', codebook_size=256, embed_dim=8, l2_norm=True,
                   beta=0.25, entropy_loss_ratio=0.05))
