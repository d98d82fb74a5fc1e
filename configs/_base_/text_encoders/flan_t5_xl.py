# LlamaGen's text-to-image encoder: google/flan-t5-xl (2048 wide), fp32 features, 120 tokens.
_text_encoder = dict(type='HFTextEncoder', path='google/flan-t5-xl', family='t5',
                     max_length=120, dtype='float32')
_caption_dim = 2048
