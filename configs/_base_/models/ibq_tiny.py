# A small IBQ tokenizer for 32 px images on a CPU: 4x downsampling (8x8 tokens), attention at the
# 8x8 level, a learnt codebook of 256 codes of dimension 32 read by inner products.
_tokenizer = dict(
    type='IBQTokenizer',
    ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=32,  # 2 downsamplings: 32 px -> 8x8
    attn_resolutions=(8, ), resolution=32,
    quantizer=dict(type='IndexBackpropQuantizer', codebook_size=256, embed_dim=32,
                   beta=0.25, entropy_loss_ratio=0.05))
