# Open-MAGVIT2 LFQ-16 (REFERENCE.md; TencentARC's pretrain_lfqgan_256_16384): 16x downsampling,
# a lookup-free quantizer over {-1, +1}^14 (2^14 = 16384 codes, no codebook parameters).
_bits = 14  # z_channels = log2(codebook_size)
_tokenizer = dict(
    type='LFQTokenizer',
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, z_channels=_bits,  # 256 px -> 16x16
    quantizer=dict(type='LookupFreeQuantizer', codebook_size=2**_bits,
                   beta=0.25, entropy_loss_ratio=0.05))
