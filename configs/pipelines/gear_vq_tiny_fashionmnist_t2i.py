# The GEAR pipeline for text-to-image on a laptop CPU (Fashion-MNIST with template captions,
# 32 px, 8x8 tokens, a tiny random-weight T5): stage 0 is the class pipeline's tokenizer warm-up
# (captions play no part in it), then stage 1 GEAR and stage 2 vq-only with caption conditioning,
# and the baseline (fresh caption AR on the stage-0 tokenizer). First write the data and encoder:
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split train --out data/fashion_mnist_captions/train-%06d.tar
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split test --out data/fashion_mnist_captions/test-%06d.tar
#   python tools/make_tiny_text_encoder.py --family t5 --out data/text_encoders/t5_tiny
#   python tools/pipeline.py configs/pipelines/gear_vq_tiny_fashionmnist_t2i.py
# The captions name only the class: this tests the text-conditioning machinery, not text
# understanding. Sample with: python tools/sample.py STAGE/final.pth --prompts FILE
work_dir = 'work_dirs/pipeline_gear_vq_tiny_fashionmnist_t2i'
stages = [
    dict(name='stage0_warmup', config='configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'),
    dict(name='stage1_gear', config='configs/gear/gear_vq_tiny_fashionmnist_t2i.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
    dict(name='stage2_vqonly', config='configs/ar/ar_vq_tiny_fashionmnist_t2i_vqonly.py',
         inputs={'model.init_from.0.checkpoint': 'stage1_gear'}),
    dict(name='baseline', config='configs/ar/baseline_vq_tiny_fashionmnist_t2i.py',
         inputs={'model.init_from.0.checkpoint': 'stage0_warmup'}),
]
compare = dict(gear='stage2_vqonly', baseline='baseline')
