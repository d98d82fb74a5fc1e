# OpenAI CLIP ViT-L/14 teacher. Official release (--enc-type clip-vit-L, src/repa_encoders/clip.py):
# 256 px image -> bicubic, no antialias, to 224 px (16x16 patches), OpenAI-CLIP mean / std, the
# transformer's patch tokens BEFORE ln_post (class token dropped), target spatial norm
# (z - 0.6 mean) / (std + 1e-6) per channel (train_gear.sh: --repa-target-spnorm zscore).
# 256 px training only in the release. Weights: timm vit_large_patch14_clip_quickgelu_224.openai
# (QuickGELU, as OpenAI's) from the hub, or model.teachers.clip.weights=/path (OpenAI or timm file)
_teachers = dict(clip=dict(type='TimmTeacher', model_name='clip_vitl14', image_size=224,
                           grid_size=16, layer=-1, final_norm=False,
                           target_norm='irepa_zscore', target_norm_alpha=0.6,
                           resize_mode='bicubic', antialias=False))
