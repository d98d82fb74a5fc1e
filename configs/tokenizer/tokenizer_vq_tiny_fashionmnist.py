# Stage 0 on a laptop CPU: a small VQ tokenizer warmed up on Fashion-MNIST (32 px, 8x8 tokens).
# A few minutes on 2 cores; reconstructions land in {work_dir}/vis/, scalars in {work_dir}/*/vis_data.
_base_ = ['../_base_/models/vq_tiny.py', '../_base_/recipes/tokenizer_tiny_fashionmnist.py']

model = dict(tokenizer={{_base_._tokenizer}})
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})
test_evaluator = val_evaluator
