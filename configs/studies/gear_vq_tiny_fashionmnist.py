# Does GEAR work at laptop scale? A fresh AR on the frozen GEAR tokenizer vs the same AR on the
# warm-up tokenizer it started from (the LlamaGen-REPA baseline), over 3 seeds, plus ablations.
#   python tools/study.py configs/studies/gear_vq_tiny_fashionmnist.py
# -> {work_dir}/report.md, study.json, ar_curves.png, ablation_ar_curves.png, stage1_codebook.png
# Stages are the tiny pipeline's (Fashion-MNIST, 32 px, 8x8 tokens of 256 codes, a 4-block AR,
# the offline EfficientNet-Lite0 teacher); two run side by side on 2 cores (jobs).
work_dir = 'work_dirs/study_gear_vq_tiny_fashionmnist'
warmup = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'  # stage 0, once
stage1 = 'configs/gear/gear_vq_tiny_fashionmnist.py'            # GEAR joint, per variant
ar = 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py'             # fresh AR on a frozen tokenizer
seeds = [0, 1, 2]
# Stage-1 variants ('--cfg-options' of stage1); each gets a fresh AR on its frozen tokenizer.
variants = {
    'gear': {},  # the reference: soft read-out tau 0.1, lambda 0.5, NTP never reaches the tokenizer
    'st_end_to_end': {'model.type': 'GEAREndToEnd'},  # + straight-through NTP into the tokenizer
    'tau_1': {'model.readout.tau': 1.0},
    'tau_0.01': {'model.readout.tau': 0.01},
    'lambda_0': {'model.lambda_align': 0.0},  # joint training with no alignment guidance
}
variant_seeds = {'st_end_to_end': [0], 'tau_1': [0], 'tau_0.01': [0], 'lambda_0': [0]}
# Every run of the study reads the same Fashion-MNIST images (each seed its own order), so the
# teacher's features are computed once and read back (gear/models/align/feature_cache.py: exact,
# per teacher; about 2.4 GB here): the teacher is 2/3 of a CPU AR step. Other options, e.g.
# ar={'train_cfg.max_iters': 600}, go to every stage of that kind.
_cache = {'model.teachers.effnet.cache_dir': '{work_dir}/teacher_cache'}
stage_options = dict(warmup={}, stage1=_cache, ar=_cache)
jobs = 2
# After training: the seed-0 AR of every arm (its final.pth holds its frozen tokenizer) as the
# pipeline evaluates it: FID of 10 x 20 samples against 500 test images, the tokenizer's PSNR /
# rFID on 200 of them, the CKA of tokenizer and AR features with the teacher on 64.
evaluate = dict(
    seeds=[0],
    dataset=dict(type='FashionMNIST', data_root='/usr/share/datasets/fashion-mnist', split='test',
                 resolution=32),
    per_class=20,
    reference_images=500,
    tokenizer_images=200,
    analysis_images=64,
    sampling=dict(cfg_scale=1.0, temperature=1.0, top_k=0, top_p=1.0, seed=0, use_ema=True),
    resize_filter='bilinear',
    cache_dir='work_dirs/fid_cache',
)
