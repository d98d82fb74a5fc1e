"""One optimizer wrapper per named parameter group of a multi-phase model.

GEAR steps three groups separately: ``tokenizer``, ``discriminator`` and ``prior`` (AR +
projector). mmengine's default constructor builds a single optimizer; this one builds an
``OptimWrapperDict`` whose keys are the group names, each over the parameters of the model's
sub-modules listed in ``modules`` (default: the attribute of the same name)::

    optim_wrapper = dict(
        constructor='ModuleOptimWrapperConstructor',
        tokenizer=dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999))),
        prior=dict(modules=['ar', 'projector'], optimizer=dict(type='AdamW', lr=1e-4)))

A parameter in two groups, or a trainable parameter in none, is an error that names it.

Under ``GearDeepSpeedWrapper`` (``deepspeed_cfg``) each group's torch optimizer is handed to its
own DeepSpeed engine and the group gets a ``DeepSpeedOptimWrapper`` (gear/engine/zero.py).
"""
import copy

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from gear.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .zero import DeepSpeedOptimWrapper


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ModuleOptimWrapperConstructor:
    """Build ``OptimWrapperDict(name -> OptimWrapper)`` from per-group configs.

    Args:
        optim_wrapper_cfg (dict): group name -> an mmengine optim-wrapper config plus optional
            ``modules`` (str or list of attribute names of the model) and ``paramwise_cfg``.
        paramwise_cfg (dict, optional): default paramwise config for every group.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        self.group_cfgs = copy.deepcopy(dict(optim_wrapper_cfg))
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        deepspeed = getattr(model, 'build_engine', None)  # GearDeepSpeedWrapper
        model = model.module if is_model_wrapper(model) else model
        wrappers, owner = {}, {}
        for name, cfg in self.group_cfgs.items():
            cfg = copy.deepcopy(dict(cfg))
            names = cfg.pop('modules', name)
            names = [names] if isinstance(names, str) else list(names)
            paramwise = cfg.pop('paramwise_cfg', self.paramwise_cfg)
            modules = []
            for attr in names:
                module = getattr(model, attr, None)
                if not isinstance(module, nn.Module):
                    raise KeyError(f'optim_wrapper.{name}.modules: the model '
                                   f'{type(model).__name__} has no sub-module {attr!r}')
                modules.append(module)
                for pname, p in module.named_parameters():
                    if id(p) in owner:
                        raise ValueError(f'parameter {attr}.{pname} is in two optimizer groups: '
                                         f'{owner[id(p)]!r} and {name!r}')
                    owner[id(p)] = name
            target = modules[0] if len(modules) == 1 else nn.ModuleList(modules)
            if deepspeed is not None:
                if len(names) != 1:
                    raise ValueError(f'optim_wrapper.{name}.modules={names}: under DeepSpeed a '
                                     'group is one module (one engine each)')
                clip = (cfg.pop('clip_grad', None) or {}).get('max_norm')
                cfg['type'] = 'OptimWrapper'  # only to build the torch optimizer
                optimizer = DefaultOptimWrapperConstructor(cfg, paramwise)(target).optimizer
                engine = deepspeed(names[0], optimizer, clip)
                wrappers[name] = DeepSpeedOptimWrapper(optimizer, engine)
                continue
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(target)
        orphans = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in owner]
        if orphans:
            raise ValueError(f'trainable parameters in no optimizer group: {orphans[:5]}'
                             f'{" ..." if len(orphans) > 5 else ""}')
        return OptimWrapperDict(**wrappers)
