# SigLIP2 ViT-B/16 at 256 px teacher. Official release (--enc-type siglip2-vit-b,
# src/repa_encoders/siglip2.py): google/siglip2-base-patch16-256 on the 256 px image as is (16x16
# patches, no resize), mean = std = 0.5, last_hidden_state (after post_layernorm, no class token),
# target spatial norm (z - 0.6 mean) / (std + 1e-6) per channel (train_gear.sh:
# --repa-target-spnorm zscore --repa-spnorm-alpha 0.6).
# Weights: timm vit_base_patch16_siglip_256.v2_webli from the hub, or ...siglip2.weights=
_teachers = dict(siglip2=dict(type='TimmTeacher', model_name='siglip2_vitb16', image_size=256,
                              grid_size=16, layer=-1, final_norm=True,
                              target_norm='irepa_zscore', target_norm_alpha=0.6))
