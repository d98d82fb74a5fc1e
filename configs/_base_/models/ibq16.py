# IBQ-16 (REFERENCE.md; TencentARC's pretrain_ibqgan_16384): 16x downsampling, attention at the
# 16x16 level, a learnt codebook of 16384 codes of dimension 256 read by inner products.
_tokenizer = dict(
    type='IBQTokenizer',
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, z_channels=256,  # 256 px -> 16x16
    attn_resolutions=(16, ), resolution=256,
    quantizer=dict(type='IndexBackpropQuantizer', codebook_size=16384, embed_dim=256,
                   beta=0.25, entropy_loss_ratio=0.05))
