"""gear's imports only point down, and every module imports on its own.

    utils, registry, version  <-  datasets, models  <-  evaluation  <-  engine
        <-  apis, train  <-  extract_codes  <-  pipeline  <-  tools/, slurm/ (outside the package)

A module may import its own package and anything on a lower layer, never a higher one or a
sibling package of its layer; lazy imports inside functions count too. ``tools/`` and
``slurm/`` are never imported by gear.
"""
import ast
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = {'gear': 0, 'gear.version': 0, 'gear.registry': 0, 'gear.utils': 0,
          'gear.datasets': 1, 'gear.models': 1, 'gear.evaluation': 2, 'gear.engine': 3,
          'gear.apis': 4, 'gear.train': 4, 'gear.extract_codes': 5,
          'gear.pipeline': 6}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def unit(module: str) -> str:
    """The layer unit of a module: ``gear.models.ar.blocks`` -> ``gear.models``."""
    parts = module.split('.')
    return '.'.join(parts[:2]) if len(parts) > 1 and '.'.join(parts[:2]) in LAYERS else parts[0]


def imports(path: pathlib.Path):
    """(line, imported module) of every import in ``path``, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield node.lineno, target


def violations(root: pathlib.Path = REPO / 'gear'):
    found = []
    for path in sorted(root.rglob('*.py')):
        own = unit(module_name(path))
        for line, target in imports(path):
            top = target.split('.')[0]
            if top in ('tools', 'slurm', 'tests'):
                found.append(f'{path.relative_to(REPO)}:{line} imports {target} (outside gear)')
            if top != 'gear':
                continue
            other = unit(target)
            if other == own or other == 'gear' or (own == 'gear' and LAYERS[other] == 0):
                continue
            if LAYERS[other] >= LAYERS[own]:
                found.append(f'{path.relative_to(REPO)}:{line} ({own}, layer {LAYERS[own]}) '
                             f'imports {target} ({other}, layer {LAYERS[other]})')
    return found


def test_imports_only_point_down():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a models file importing gear.apis, lazily, is reported."""
    bad = tmp_path / 'gear' / 'models' / 'bad.py'
    bad.parent.mkdir(parents=True)
    bad.write_text('def f():\n    from gear.apis.loading import load_model\n')
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert violations(tmp_path / 'gear') == [
            'gear/models/bad.py:2 (gear.models, layer 1) imports gear.apis.loading (gear.apis, layer 4)']
    finally:
        REPO = saved


# Run in a fresh interpreter: third-party libraries are imported once, then every gear module is
# imported first thing in its own forked child (no gear module is loaded before the fork).
IMPORT_EACH = r"""
import multiprocessing, sys, traceback, importlib
import numpy, torch, torchvision, timm, mmengine.runner, mmengine.model  # shared by all children
def alone(name):
    try:
        importlib.import_module(name)
        return ''
    except BaseException:
        return name + ':\n' + traceback.format_exc()
if __name__ == '__main__':
    assert not any(m == 'gear' or m.startswith('gear.') for m in sys.modules)
    names = sys.argv[1:]
    with multiprocessing.get_context('fork').Pool(2, maxtasksperchild=1) as pool:
        errors = [e for e in pool.map(alone, names, chunksize=1) if e]
    print('\n'.join(errors) or f'{len(names)} modules imported alone')
    sys.exit(1 if errors else 0)
"""


def every_module():
    return sorted(module_name(p) for p in (REPO / 'gear').rglob('*.py')
                  if '.mim' not in p.parts)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each gear module first in its own process, so an import cycle that only a particular
    order hides shows up (``python -c "import gear.apis.weights"`` once failed this way)."""
    proc = subprocess.run([sys.executable, '-c', IMPORT_EACH, *every_module()], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
