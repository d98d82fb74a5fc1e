# The paper's teacher (REFERENCE.md): DINOv2 ViT-B/14 patch tokens after the final norm at 224 px
# (16x16 patches = the 16x16 token grid of a 16x tokenizer at 256 px). Weights through timm from
# the Hugging Face hub, or a local file: --cfg-options model.teachers.dinov2.weights=/path.pth
_teachers = dict(dinov2=dict(type='TimmTeacher', model_name='dinov2_vitb14', image_size=224,
                             grid_size=16))
