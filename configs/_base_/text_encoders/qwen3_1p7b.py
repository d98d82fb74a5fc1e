# The official GEAR text-to-image encoder (scripts/train/train_t2i_gpic.sh): Qwen/Qwen3-1.7B, its
# last hidden state (2048 wide), bf16, frozen, captions right-padded to 300 tokens
# (--text-max-len 300 = the AR's cls_token_num). From the hub, or a local copy as `path`.
_text_encoder = dict(type='HFTextEncoder', path='Qwen/Qwen3-1.7B', family='auto',
                     max_length=300, dtype='bfloat16')
_caption_dim = 2048
