"""requirements/: the ranges mmal declares (runtime.txt is setup.py's
``install_requires``; mmcv.txt, torch.txt and build.txt are installed by
tools/install.sh) and the one exact set tools/install.sh holds them to
(constraints.txt)."""
import os.path as osp
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import mmal.version
from conftest import REPO

REQUIREMENTS = osp.join(REPO, 'requirements')
DECLARED = ('runtime.txt', 'mmcv.txt', 'torch.txt', 'build.txt', 'tests.txt')
# the packages an existing OpenMMLab stack holds: ranges, never pins
OPENMMLAB = {
    'mmengine': mmal.version.MMENGINE_RANGE,
    'mmcv': mmal.version.MMCV_RANGE,
    'mmdet': mmal.version.MMDET_RANGE,
    'mmpretrain': mmal.version.MMPRETRAIN_RANGE,
}


def _read(name: str) -> dict:
    """``{package: Requirement}`` of a requirements file."""
    reqs = {}
    with open(osp.join(REQUIREMENTS, name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                req = Requirement(line)
                reqs[canonicalize_name(req.name)] = req
    return reqs


def _declared() -> dict:
    reqs = {}
    for name in DECLARED:
        reqs.update(_read(name))
    return reqs


def _pins() -> dict:
    """``{package: version}`` of constraints.txt (each an exact pin)."""
    pins = {}
    for name, req in _read('constraints.txt').items():
        (spec, ) = req.specifier
        assert spec.operator == '==' and '*' not in spec.version, req
        pins[name] = spec.version
    return pins


def test_openmmlab_packages_are_declared_as_ranges():
    declared = _declared()
    for name in OPENMMLAB:
        ops = sorted(s.operator for s in declared[name].specifier)
        assert ops == ['<', '>='], f'{declared[name]}: give a range'


def test_the_ranges_are_those_mmal_checks_at_import():
    """mmal/version.py's ranges (``import mmal`` refuses others) and the
    requirement files say the same."""
    declared = _declared()
    for name, (low, high) in OPENMMLAB.items():
        assert declared[name].specifier == Requirement(
            f'{name}>={low},<{high}').specifier, name


def test_setup_py_installs_runtime_txt():
    scope = {'__file__': osp.join(REPO, 'setup.py')}
    with open(scope['__file__']) as f:
        source = f.read()
    assert "install_requires=requirements('runtime.txt')" in source
    exec(source.split('\nsetup(')[0], scope)  # setup.py's helpers only
    assert [Requirement(r).name for r in scope['requirements']('runtime.txt')
            ] == [r.name for r in _read('runtime.txt').values()]


def test_every_pin_is_inside_the_declared_ranges():
    pins = _pins()
    assert set(OPENMMLAB) | {'torch', 'torchvision'} <= set(pins)
    for name, req in _declared().items():
        if name in pins:
            assert req.specifier.contains(
                pins[name], prereleases=True), (f'{name}=={pins[name]} '
                                                f'(constraints.txt) is not '
                                                f'in {req}')


def test_the_installed_packages_are_the_tested_set():
    """What tools/install.sh installed (the environment CI tests)."""
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f'{name} is not installed (bash tools/install.sh)')
        # a local label (torch's +cu...) is the same release
        assert Version(installed).public == Version(pinned).public, (
            f'{name} {installed} is installed, constraints.txt pins '
            f'{pinned} (bash tools/install.sh)')
