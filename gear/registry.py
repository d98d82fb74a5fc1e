"""Every registry of gear, in one place.

Registries that mmengine already has are children of mmengine's, so mmengine's own components
(hooks, optimizers, schedulers, loops, visualisers) stay buildable from gear configs; the
method-specific registries (quantizers, tokenizers, AR backbones, read-outs, alignment teachers
and losses) are gear's own. Each registry names the package where its members live
(``locations=``), so ``build`` imports them on first use and a config never needs
``custom_imports``.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

# --- children of mmengine's registries -------------------------------------------------------
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['gear.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['gear.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['gear.engine.hooks'])
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, locations=['gear.engine'])
LOG_PROCESSORS = Registry('log processor', parent=MMENGINE_LOG_PROCESSORS, locations=['gear.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['gear.engine'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['gear.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=['gear.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['gear.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['gear.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['gear.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['gear.datasets'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=['gear.datasets'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['gear.models'])
MODEL_WRAPPERS = Registry('model wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['gear.engine'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['gear.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['gear.evaluation'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['gear.engine'])
VISBACKENDS = Registry('vis backend', parent=MMENGINE_VISBACKENDS, locations=['gear.engine'])

# --- gear's own registries: the components a GEAR model is assembled from --------------------
QUANTIZERS = Registry('quantizer', locations=['gear.models.quantizers'])
TOKENIZERS = Registry('tokenizer', locations=['gear.models.tokenizers'])
AR_BACKBONES = Registry('AR backbone', locations=['gear.models.ar'])
READOUTS = Registry('read-out', locations=['gear.models.readouts'])
ALIGN_ENCODERS = Registry('alignment teacher', locations=['gear.models.align'])
ALIGN_LOSSES = Registry('alignment loss', locations=['gear.models.align'])
LOSSES = Registry('loss', locations=['gear.models.losses'])
TEXT_ENCODERS = Registry('text encoder', locations=['gear.models.text'])
DISCRIMINATORS = Registry('discriminator', locations=['gear.models.discriminators'])
