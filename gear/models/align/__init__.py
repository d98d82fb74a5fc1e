"""Representation alignment (REPA): frozen teachers, the projector and the alignment loss."""
from .feature_cache import TeacherFeatureCache
from .projector import Projector
from .repa import REPALoss, patch_cosine
from .teacher_efficientnet import (EfficientNetLite0Teacher, build_efficientnet_lite0,
                                   convert_efficientnet_lite0)
from .teachers import (TARGET_NORMS, BaseTeacher, normalize_target, resample_grid,
                       spatial_zscore)
from .teachers_timm import TIMM_TEACHER_PRESETS, TeacherPreset, TimmTeacher

__all__ = ['Projector', 'REPALoss', 'patch_cosine', 'BaseTeacher', 'resample_grid',
           'spatial_zscore', 'normalize_target', 'TARGET_NORMS', 'EfficientNetLite0Teacher',
           'build_efficientnet_lite0', 'convert_efficientnet_lite0', 'TimmTeacher',
           'TeacherPreset', 'TIMM_TEACHER_PRESETS', 'TeacherFeatureCache']
