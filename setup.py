"""Install mmal (``pip install -e .``; see tools/install.sh for the stack)."""
import os.path as osp
from setuptools import find_packages, setup


def version() -> str:
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmal', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def requirements(name: str) -> list:
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [
            line.split('#')[0].strip() for line in f
            if line.split('#')[0].strip()
        ]


setup(
    name='mmal',
    version=version(),
    description='Active learning (ISAL and baselines) for OpenMMLab '
    'detectors and classifiers',
    long_description=open('README.md').read()
    if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    python_requires='>=3.8',
    install_requires=requirements('runtime.txt'),
    extras_require=dict(tests=requirements('tests.txt')),
    license='Apache License 2.0',
    zip_safe=False)
