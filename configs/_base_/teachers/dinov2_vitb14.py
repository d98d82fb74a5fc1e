# The paper's teacher (REFERENCE.md): DINOv2 ViT-B/14 patch tokens after the final norm at 224 px
# (16x16 patches = the 16x16 token grid of a 16x tokenizer at 256 px). Weights through timm from
# the Hugging Face hub, or a local file: --cfg-options model.teachers.dinov2.weights=/path.pth
# Official release (--enc-type dinov2-vit-b, src/repa_encoders/dinov2.py): 256 px image ->
# bicubic, no antialias, to (256 // 16) * 14 = 224 px, ImageNet mean / std, x_norm_patchtokens
# (last block + final norm), no target normalisation (train_gear.sh: spnorm none).
_teachers = dict(dinov2=dict(type='TimmTeacher', model_name='dinov2_vitb14', image_size=224,
                             grid_size=16, layer=-1, final_norm=True, target_norm=None,
                             resize_mode='bicubic', antialias=False))
