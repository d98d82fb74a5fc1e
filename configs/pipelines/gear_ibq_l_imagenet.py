# The paper's ImageNet 256 px pipeline with the IBQ-16 tokenizer (REFERENCE.md), GPT-L, DINOv2
# teacher; stages and comparison as configs/pipelines/gear_vq_l_imagenet.py:
#   python slurm/launch.py --pipeline configs/pipelines/gear_ibq_l_imagenet.py --nodes 4
#   python tools/pipeline.py configs/pipelines/gear_ibq_l_imagenet.py   # the same, one machine
_base_ = ['./gear_vq_l_imagenet.py']
work_dir = 'work_dirs/pipeline_gear_ibq_l_imagenet'
stages = [
    dict(name='stage0_tokenizer', config='configs/tokenizer/tokenizer_ibq16_imagenet.py'),
    dict(name='stage1_gear', config='configs/gear/gear_ibq_l_imagenet.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_tokenizer'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_ibq_l_imagenet_vqonly.py',
         inputs={'model.init_from.0.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_ibq_l_imagenet.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_tokenizer'}),
]
