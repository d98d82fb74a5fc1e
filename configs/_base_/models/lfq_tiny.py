# A small Open-MAGVIT2 LFQ tokenizer for 32 px images on a CPU: 4x downsampling (8x8 tokens),
# a lookup-free quantizer over {-1, +1}^8 (2^8 = 256 codes, no codebook parameters).
_bits = 8  # z_channels = log2(codebook_size)
_tokenizer = dict(
    type='LFQTokenizer',
    ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=_bits,  # 2 downsamplings: 32 px -> 8x8
    quantizer=dict(type='LookupFreeQuantizer', codebook_size=2**_bits,
                   beta=0.25, entropy_loss_ratio=0.05))
