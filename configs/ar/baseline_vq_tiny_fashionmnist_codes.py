# Baseline LlamaGen-REPA from pre-extracted codes (docs/codes.md): baseline_vq_tiny_fashionmnist.py
# (the vq-only stage 2 on the stage-0 tokenizer) with the train data switched to codes:
#   python tools/extract_codes.py configs/ar/baseline_vq_tiny_fashionmnist_codes.py
#   python tools/train.py configs/ar/baseline_vq_tiny_fashionmnist_codes.py
# It repeats the baseline's one line (init_from) instead of inheriting it: an experiment has at
# most one link. Augmentation and disk as in ar_vq_tiny_fashionmnist_vqonly_codes.py: image
# or flip drawn per item; 9.8 GB of float32 teacher maps for the 60k train images.
_base_ = ['./ar_vq_tiny_fashionmnist_vqonly.py']
_stage0 = 'work_dirs/tokenizer_vq_tiny_fashionmnist/final.pth'

model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CodesDataset', root='work_dirs/codes/baseline_vq_tiny_fashionmnist',
    source={{_base_.train_dataloader.dataset}}))  # what the codes stand for: checked on load
