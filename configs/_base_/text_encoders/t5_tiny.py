# A tiny T5 encoder with random weights and a tokenizer trained on the demo captions, written
# offline (no download) by:
#   python tools/make_tiny_text_encoder.py --family t5 --out data/text_encoders/t5_tiny
# It runs the real transformers code path; with random weights its embeddings still tell the
# demo's captions apart (their words differ), which is all the CPU demo asks of it.
_text_encoder = dict(type='HFTextEncoder', path='data/text_encoders/t5_tiny', family='t5',
                     max_length=16,  # demo captions are <= 10 words; the AR's caption prefix
                     dtype='float32', local_files_only=True,
                     cache_dir='work_dirs/text_cache')  # the 70k demo captions, encoded once
_caption_dim = 32  # the tiny encoder's hidden size
# The AR's caption prefix for this encoder: its width, one prefix token per encoder position,
# and the official release's choices (the empty caption "" as the null caption, a bias-free MLP).
_caption_ar = dict(caption_dim=_caption_dim, cls_token_num=16, null_caption='empty',
                   caption_mlp_bias=False)
