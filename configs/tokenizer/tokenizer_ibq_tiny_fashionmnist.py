# Stage 0 on a laptop CPU: a small IBQ tokenizer warmed up on Fashion-MNIST (32 px, 8x8 tokens).
_base_ = ['../_base_/models/ibq_tiny.py', '../_base_/recipes/tokenizer_tiny_fashionmnist.py']

model = dict(tokenizer={{_base_._tokenizer}})
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})
test_evaluator = val_evaluator
