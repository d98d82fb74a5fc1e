# Stage 2 "vq-only" from pre-extracted codes (docs/codes.md): the online config with the train
# data switched to the stage-1 EMA tokenizer's tokens and the teacher's features, encoded once:
#   python tools/extract_codes.py configs/ar/ar_vq_tiny_fashionmnist_vqonly_codes.py
#   python tools/train.py configs/ar/ar_vq_tiny_fashionmnist_vqonly_codes.py
# Augmentation differs by design: the online pipeline has none; each item here is the image or
# its horizontal flip, drawn at random (LlamaGen's codes); views=['orig'] trains on the very
# images of the online run. Validation stays online, on the test images.
# Disk: 80 KiB of teacher map (4x4 x 1280) per image and view, 9.8 GB for the 60k train images
# (extract_codes.py --feature-dtype float16 halves it; source.num_samples=N takes fewer).
_base_ = ['./ar_vq_tiny_fashionmnist_vqonly.py']

train_dataloader = dict(dataset=dict(
    _delete_=True, type='CodesDataset', root='work_dirs/codes/ar_vq_tiny_fashionmnist_vqonly',
    source={{_base_.train_dataloader.dataset}}))  # what the codes stand for: checked on load
