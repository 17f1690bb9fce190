"""Install mmal (``pip install -e .``; see tools/install.sh for the stack).

``install_requires`` is requirements/runtime.txt: the ranges of mmengine,
mmdet and mmpretrain mmal works with, so that installing mmal next to an
existing OpenMMLab stack keeps it. tools/install.sh installs the exact,
tested set (requirements/constraints.txt).

mmal's configs travel in the package as ``mmal/.mim/configs``, as mmdet's
do, so that other projects' configs can name them
(``_base_ = 'mmal::isal_fcos_voc.py'``, see mmal/utils/config_scope.py): a
wheel gets a copy of ``configs/``; an editable install a link to it.
"""
import os
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = osp.dirname(osp.abspath(__file__))
CONFIGS = osp.join(HERE, 'configs')
MIM_CONFIGS = osp.join('mmal', '.mim', 'configs')


def version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmal', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def requirements(name: str) -> list:
    path = osp.join(HERE, 'requirements', name)
    with open(path) as f:
        return [
            line.split('#')[0].strip() for line in f
            if line.split('#')[0].strip()
        ]


def link_configs() -> None:
    """``mmal/.mim/configs`` -> ``configs/`` in the source tree (editable
    installs: edits to the configs show at once)."""
    link = osp.join(HERE, MIM_CONFIGS)
    target = osp.relpath(CONFIGS, osp.dirname(link))  # ../../configs
    if osp.islink(link) and os.readlink(link) == target:
        return
    if osp.islink(link) or osp.isfile(link):
        os.remove(link)
    elif osp.isdir(link):
        shutil.rmtree(link)
    os.makedirs(osp.dirname(link), exist_ok=True)
    os.symlink(target, link)


class BuildPyWithConfigs(build_py):
    """build_py that also puts ``configs/`` at ``mmal/.mim/configs``: a copy
    in the build (wheels), a link in the source tree (editable installs)."""

    def run(self):
        super().run()
        if not osp.isdir(CONFIGS):  # a build from a tree without configs
            return
        if getattr(self, 'editable_mode', False):
            link_configs()
            return
        target = osp.join(self.build_lib, MIM_CONFIGS)
        if osp.isdir(target):
            shutil.rmtree(target)
        shutil.copytree(
            CONFIGS,
            target,
            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


class DevelopWithConfigs(develop):
    """``setup.py develop`` (pip's editable install without PEP 660, e.g.
    with an older setuptools and ``--no-build-isolation``) with the link."""

    def run(self):
        if osp.isdir(CONFIGS):
            link_configs()
        super().run()


setup(
    name='mmal',
    version=version(),
    description='Active learning (ISAL and baselines) for OpenMMLab '
    'detectors and classifiers',
    long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists(
        osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    python_requires='>=3.8',
    install_requires=requirements('runtime.txt'),
    extras_require=dict(tests=requirements('tests.txt')),
    cmdclass=dict(build_py=BuildPyWithConfigs, develop=DevelopWithConfigs),
    license='Apache License 2.0',
    zip_safe=False)
