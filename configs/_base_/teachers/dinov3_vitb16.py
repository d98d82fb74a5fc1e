# DINOv3 ViT-B/16 (LVD-1689M) teacher. Official release (--enc-type dinov3-vit-b,
# src/repa_encoders/dinov3.py): the 256 px image as is (RoPE, native size: 16x16 patches = the
# token grid, no resize, no resampling), ImageNet mean / std, x_norm_patchtokens (last block +
# final norm, 1 class + 4 register tokens dropped), no target normalisation (train_gear.sh).
# Weights: timm vit_base_patch16_dinov3.lvd1689m from the hub, or model.teachers.dinov3.weights=
_teachers = dict(dinov3=dict(type='TimmTeacher', model_name='dinov3_vitb16', image_size=256,
                             grid_size=16, layer=-1, final_norm=True, target_norm=None))
