# LlamaGen VQ-16 (REFERENCE.md): 16x downsampling, 16384 codes of dimension 8, l2-normalised.
_tokenizer = dict(
    type='VQTokenizer',
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, z_channels=256,  # 4 downsamplings: 256 px -> 16x16
    quantizer=dict(type='VectorQuantizer', codebook_size=16384, embed_dim=8, l2_norm=True,
                   beta=0.25, entropy_loss_ratio=0.05))
