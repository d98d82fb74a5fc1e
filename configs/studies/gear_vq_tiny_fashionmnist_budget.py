# Is the tiny study's null result a matter of budget? The same study at seed 0 with a 3x longer
# stage 1 (900 steps instead of 300), GEAR against joint training without alignment (lambda 0);
# the ARs keep the 300-step budget, so the baseline AR is the main study's baseline_s0_ar.
#   python tools/study.py configs/studies/gear_vq_tiny_fashionmnist_budget.py
# The warm-up is the main study's (seed 0, deterministic): a copy or link of
# work_dirs/study_gear_vq_tiny_fashionmnist/warmup in this work dir is taken as complete.
_base_ = ['./gear_vq_tiny_fashionmnist.py']
work_dir = 'work_dirs/study_gear_vq_tiny_fashionmnist_budget'
seeds = [0]
variants = {'_delete_': True,
            'gear': {'train_cfg.max_iters': 900},
            'lambda_0': {'model.lambda_align': 0.0, 'train_cfg.max_iters': 900}}
variant_seeds = {'_delete_': True, 'lambda_0': [0]}
