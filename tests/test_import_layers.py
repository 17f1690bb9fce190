"""mmal's subpackages import only the layers below them.

Every ``import`` and ``from ... import`` of every module under ``mmal/`` is
read from its source (those inside functions and ``TYPE_CHECKING`` blocks
too), mapped to the subpackage it names, and checked against the layer
order of docs/en/advanced_guides/layout.md: no import runs back up, so no
import cycle between subpackages can form.
"""
import ast
import os
import os.path as osp
import subprocess
import sys

from conftest import REPO

#: Bottom to top; a subpackage may import those before it (``registry`` and
#: ``version`` are modules of the top-level package).
LAYERS = ('version', 'registry', 'utils', 'structures', 'influence',
          'datasets', 'tasks', 'models', 'selectors', 'annotation', 'engine',
          'analysis', 'testing')
PACKAGE = osp.join(REPO, 'mmal')


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(root, name)


def _layer_of(path: str) -> str:
    """The subpackage (or top-level module) a file of mmal belongs to."""
    rel = osp.relpath(path, PACKAGE).split(osp.sep)
    return rel[0][:-3] if len(rel) == 1 else rel[0]


def _imported(path: str):
    """(line, absolute module name) of every mmal import in ``path``."""
    rel = osp.relpath(path, REPO)[:-3].split(osp.sep)
    package = rel[:-1]  # a module's package; __init__'s is itself
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            yield node.lineno, name


def _upward_imports():
    bad = []
    for path in _modules():
        own = _layer_of(path)
        if own == '__init__':  # mmal/__init__.py sits above every layer
            continue
        for line, name in _imported(path):
            parts = name.split('.')
            if parts[0] != 'mmal' or len(parts) < 2 or parts[1] == own:
                continue
            if LAYERS.index(parts[1]) > LAYERS.index(own):
                bad.append(f'{osp.relpath(path, REPO)}:{line} imports {name} '
                           f'({own} is below {parts[1]})')
    return bad


def test_every_subpackage_has_a_layer():
    found = {_layer_of(p) for p in _modules()} - {'__init__'}
    assert found == set(LAYERS), (
        'a subpackage without a layer (add it to LAYERS and to '
        f'docs/en/advanced_guides/layout.md): {sorted(found ^ set(LAYERS))}')


def test_no_import_runs_back_up():
    assert _upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk finds a relative and an absolute upward import (a lazy
    one inside a function included)."""
    pkg = tmp_path / 'mmal'
    (pkg / 'utils').mkdir(parents=True)
    (pkg / 'utils' / 'bad.py').write_text(
        'from ..engine import ActiveLearningRunner\n'
        'def f():\n'
        '    import mmal.selectors.base\n')
    monkeypatch.setattr(sys.modules[__name__], 'PACKAGE', str(pkg))
    monkeypatch.setattr(sys.modules[__name__], 'REPO', str(tmp_path))
    bad = _upward_imports()
    assert len(bad) == 2, bad
    assert 'imports mmal.engine' in bad[0]
    assert 'imports mmal.selectors.base' in bad[1]


def test_the_report_loads_without_the_driver():
    """``mmal.analysis`` reads runs without running them: importing it in a
    fresh interpreter loads neither the driver nor the selectors."""
    code = ('import sys, mmal.analysis; '
            'print(sorted(m for m in sys.modules if m.startswith("mmal.")))')
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=REPO,
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stdout
    assert 'mmal.analysis' in loaded
    for above in ('mmal.engine', 'mmal.selectors', 'mmal.models'):
        assert f"'{above}'" not in loaded, loaded
