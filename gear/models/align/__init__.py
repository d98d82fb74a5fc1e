"""Representation alignment (REPA): frozen teachers, the projector and the alignment loss."""
from .feature_cache import TeacherFeatureCache
from .projector import Projector
from .repa import REPALoss, patch_cosine
from .teacher_efficientnet import (EfficientNetLite0Teacher, build_efficientnet_lite0,
                                   convert_efficientnet_lite0)
from .teachers import BaseTeacher, resample_grid, spatial_zscore
from .teachers_timm import TIMM_TEACHER_PRESETS, TimmTeacher

__all__ = ['Projector', 'REPALoss', 'patch_cosine', 'BaseTeacher', 'resample_grid',
           'spatial_zscore', 'EfficientNetLite0Teacher', 'build_efficientnet_lite0',
           'convert_efficientnet_lite0', 'TimmTeacher', 'TIMM_TEACHER_PRESETS',
           'TeacherFeatureCache']
