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
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_vq_tiny_fashionmnist_vqonly.py',
         inputs={'model.init_from.0.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_vq_tiny_fashionmnist.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
]
# summary.json and curves.png compare these two ARs: same AR, data and steps, different tokenizer
compare = dict(gear='stage2_vqonly', baseline='baseline')
# After training: tools/test.py-style evaluation of the two compared ARs (each final.pth holds its
# frozen tokenizer too) into {work_dir}/{stage}/evaluation.json, summarised in summary.json.
# FID of 10 x 20 samples against 500 Fashion-MNIST test images (the exact 'features' FID below
# 2048 samples; with so few samples FID is biased high: compare runs, not papers), tokenizer
# metrics and rFID on the first 200 of them; skipped when done with the same options. About 2-3
# CPU minutes the first time (Inception at ~0.1 s an image on 500 reference + 2 x 200 samples +
# 2 x 200 reconstructions); the reference statistics are cached for reruns.
evaluate = dict(
    stages=['stage2_vqonly', 'baseline'],
    dataset=dict(type='FashionMNIST', data_root='/usr/share/datasets/fashion-mnist', split='test',
                 resolution=32),
    per_class=20,  # x 10 classes = 200 samples per AR
    reference_images=500,
    tokenizer_images=200,
    analysis_images=64,
    sampling=dict(cfg_scale=1.0, temperature=1.0, top_k=0, top_p=1.0, seed=0, use_ema=True),
    resize_filter='bilinear',
    cache_dir='work_dirs/fid_cache',  # shared with tools/test.py
)
