# The whole GEAR pipeline on a laptop CPU (Fashion-MNIST, 32 px, 8x8 tokens):
#   stage 0 warm-up -> stage 1 GEAR joint -> stage 2 vq-only (fresh AR, frozen GEAR tokenizer)
#   stage 0 ---------------------------------> baseline LlamaGen-REPA (fresh AR, frozen warm-up tokenizer)
#   python tools/pipeline.py configs/pipelines/gear_vq_tiny_fashionmnist.py
# Each stage runs tools/train.py in {work_dir}/{name}; ``inputs`` maps a config key to the stage
# whose exported weights (final.pth) it reads. Complete stages are skipped, so a rerun resumes.
work_dir = 'work_dirs/pipeline_gear_vq_tiny_fashionmnist'
stages = [
    dict(name='stage0_warmup', config='configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'),
    dict(name='stage1_gear', config='configs/gear/gear_vq_tiny_fashionmnist.py',
         inputs={'model.init_from.checkpoint': 'stage0_warmup'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_vq_tiny_fashionmnist_vqonly.py',
         inputs={'model.tokenizer_from.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_vq_tiny_fashionmnist.py',
         inputs={'model.tokenizer_from.checkpoint': 'stage0_warmup'}),
]
# summary.json and curves.png compare these two ARs: same AR, data and steps, different tokenizer
compare = dict(gear='stage2_vqonly', baseline='baseline')
