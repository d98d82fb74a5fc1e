# Stage 1, GEAR joint, on a laptop CPU: the stage-0 tiny IBQ tokenizer + a small LlamaGen GPT
# trained together on Fashion-MNIST (8x8 tokens), aligned to the offline EfficientNet-Lite0 teacher.
_base_ = ['../_base_/models/ibq_tiny.py', '../_base_/recipes/gear_tiny_fashionmnist.py']
_stage0 = 'work_dirs/tokenizer_ibq_tiny_fashionmnist/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage0, modules=dict(
        tokenizer='tokenizer', tokenizer_ema='tokenizer_ema', discriminator='discriminator'))])
val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})
test_evaluator = val_evaluator
