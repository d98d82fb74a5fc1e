# The whole GEAR pipeline on a laptop CPU with the LFQ tokenizer family (Fashion-MNIST, 32 px,
# 8x8 tokens); stages, comparison and evaluation as configs/pipelines/gear_vq_tiny_fashionmnist.py:
#   python tools/pipeline.py configs/pipelines/gear_lfq_tiny_fashionmnist.py
_base_ = ['./gear_vq_tiny_fashionmnist.py']
work_dir = 'work_dirs/pipeline_gear_lfq_tiny_fashionmnist'
stages = [
    dict(name='stage0_warmup', config='configs/tokenizer/tokenizer_lfq_tiny_fashionmnist.py'),
    dict(name='stage1_gear', config='configs/gear/gear_lfq_tiny_fashionmnist.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_lfq_tiny_fashionmnist_vqonly.py',
         inputs={'model.init_from.0.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_lfq_tiny_fashionmnist.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
]
