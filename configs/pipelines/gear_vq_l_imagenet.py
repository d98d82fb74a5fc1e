# The paper's ImageNet 256 px pipeline (REFERENCE.md), GPT-L, VQ-16, DINOv2 teacher:
#   stage 0 warm-up -> stage 1 GEAR joint -> stage 2 vq-only (fresh AR, frozen GEAR tokenizer)
#   stage 0 -------------------------------> baseline LlamaGen-REPA (fresh AR, frozen warm-up tok.)
#   python slurm/launch.py --nodes 4          # one SLURM job per stage, chained by afterok
#   python tools/pipeline.py configs/pipelines/gear_vq_l_imagenet.py   # the same, one machine
# Each stage runs tools/train.py in {work_dir}/{name}; ``inputs`` maps a config key to the stage
# whose exported weights (final.pth) it reads. Complete stages are skipped, so a rerun resumes.
# Every stage trains at the recipe's global batch of 256 (global_batch_size) on any number of
# GPUs: each loads 256 / world size, 8 on 4 nodes x 8 GPUs; --cfg-options global_batch_size=N
# changes it (the LR stays the config's).
work_dir = 'work_dirs/pipeline_gear_vq_l_imagenet'
stages = [
    dict(name='stage0_tokenizer', config='configs/tokenizer/tokenizer_vq16_imagenet.py'),
    dict(name='stage1_gear', config='configs/gear/gear_vq_l_imagenet.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_tokenizer'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_vq_l_imagenet_vqonly.py',
         inputs={'model.init_from.0.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_vq_l_imagenet.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_tokenizer'}),
]
# summary.json and curves.png compare these two ARs: same AR, data and steps, different tokenizer
compare = dict(gear='stage2_vqonly', baseline='baseline')
