# Stage 1, GEAR joint, text-to-image, on a laptop CPU: the tiny GEAR run of
# gear_vq_tiny_fashionmnist.py with the AR conditioned on captions instead of classes: a tiny
# frozen T5 encoder's 16 hidden states, projected to a 16-token prefix (the official release's
# bias-free MLP; the null caption is the encoder's "", dropped in with p = 0.1 for CFG).
# Needs the caption shards and the tiny encoder (the two fragments say how to write them):
#   python tools/train.py configs/gear/gear_vq_tiny_fashionmnist_t2i.py
_base_ = ['./gear_vq_tiny_fashionmnist.py', '../_base_/text_encoders/t5_tiny.py',
          '../_base_/datasets/fashion_mnist_captions.py']

model = dict(text_encoder={{_base_._text_encoder}}, prior=dict(ar={{_base_._caption_ar}}))
# the same images as Fashion-MNIST, read as (image, caption) pairs from WebDataset shards
train_dataloader = dict(dataset={{_base_._caption_train_dataset}})
val_dataloader = dict(dataset={{_base_._caption_val_dataset}})
test_dataloader = dict(dataset={{_base_._caption_test_dataset}})
