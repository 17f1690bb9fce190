"""``_base_ = 'mmal::<config>'``: mmal's configs from a config outside the
repository (mmal/utils/config_scope.py; setup.py's ``mmal/.mim/configs``).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmal.utils.config_scope import (config_dir, config_path,
                                     register_config_scope)
from conftest import REPO, tiny_overrides

DEMO = 'isal_fcos_shapes.py'


@pytest.fixture(autouse=True)
def _scope():
    register_config_scope()  # what `import mmal` does


def _plain(cfg: Config) -> dict:
    return json.loads(json.dumps(cfg.to_dict(), default=repr))


def _outside(tmp_path, text: str, name: str = 'my_config.py') -> str:
    path = tmp_path / name
    path.write_text(text)
    assert not str(path).startswith(REPO)
    return str(path)


def test_import_mmal_registers_the_scope():
    """A fresh interpreter: ``import mmal`` alone lets mmengine read
    ``mmal::``."""
    code = ('import mmal\n'
            'from mmengine.config import Config\n'
            'from mmal.utils.config_scope import _get_cfg_path\n'
            'assert Config._get_cfg_path is _get_cfg_path\n')
    subprocess.run([sys.executable, '-c', code], check=True, cwd='/')


def test_an_outside_config_gets_the_demo_with_its_override(tmp_path):
    """Same keys and values as the demo config read by its path (its
    relative and ``mmdet::`` bases resolved from mmal's config folder, no
    ``_scope_`` added), but the override."""
    path = _outside(
        tmp_path, f"_base_ = 'mmal::{DEMO}'\n"
        'al_cfg = dict(budget=7)\n'
        'train_cfg = dict(max_epochs=3)\n')
    cfg = Config.fromfile(path)
    original = Config.fromfile(osp.join(REPO, 'configs', DEMO))
    assert set(cfg.keys()) == set(original.keys())
    assert (cfg.al_cfg.budget, cfg.train_cfg.max_epochs) == (7, 3)
    assert original.al_cfg.budget != 7
    original.merge_from_dict({'al_cfg.budget': 7, 'train_cfg.max_epochs': 3})
    assert _plain(cfg) == _plain(original)
    assert '_scope_' not in cfg.model and '_scope_' not in cfg.al_cfg.selector


def test_a_base_file_in_a_subfolder_and_a_list_of_bases(tmp_path):
    path = _outside(
        tmp_path, "_base_ = ['mmal::_base_/models/fcos_r18-small.py',\n"
        "          'mmal::_base_/datasets/al_shapes.py']\n")
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'FCOS' and cfg.classes
    assert cfg.filename == path


def test_mmdet_bases_are_left_to_mmengine(tmp_path):
    path = _outside(tmp_path, "_base_ = 'mmdet::_base_/default_runtime.py'\n")
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet'
    assert cfg.default_hooks.timer._scope_ == 'mmdet'


def test_a_missing_or_escaping_name_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='mmal has no config nope.py'):
        Config.fromfile(_outside(tmp_path, "_base_ = 'mmal::nope.py'\n"))
    with pytest.raises(ValueError, match='inside mmal'):
        config_path('../setup.py')


def test_the_config_folder_is_the_repositorys():
    """An editable install links ``mmal/.mim/configs`` to ``configs/``;
    without it (a checkout not installed) the repository's folder is
    used."""
    assert osp.samefile(config_dir(), osp.join(REPO, 'configs'))
    assert osp.samefile(config_path(DEMO), osp.join(REPO, 'configs', DEMO))


def test_a_built_package_carries_the_configs(tmp_path):
    """``setup.py build_py`` (what a wheel is made of) copies ``configs/``
    to ``mmal/.mim/configs``; the copy's relative bases resolve there."""
    build = tmp_path / 'build'
    subprocess.run(
        [sys.executable, 'setup.py', '-q', 'build_py', '-d',
         str(build)],
        check=True,
        cwd=REPO,
        capture_output=True)
    mim = build / 'mmal' / '.mim' / 'configs'
    assert not osp.islink(mim)
    assert (mim / DEMO).is_file()
    assert (mim / '_base_' / 'datasets' / 'al_shapes.py').is_file()
    assert (build / 'mmal' / 'utils' / 'config_scope.py').is_file()
    cfg = Config.fromfile(str(mim / DEMO))
    assert cfg.al_cfg.selector.type == 'mmal.InfluenceSelector'


def _py(value) -> str:
    return repr(value.to_dict() if hasattr(value, 'to_dict') else value)


def test_al_train_runs_the_demo_from_an_outside_config(tmp_path):
    """tools/al_train.py (a fresh process, run outside the repository) runs
    two tiny cycles of the demo from ``_base_ = 'mmal::isal_fcos_shapes.py'``
    plus the suite's tiny overrides."""
    nested = Config()
    nested.merge_from_dict({
        **tiny_overrides(max_epochs=1), 'al_cfg.selector.solver.depth': 3,
        'al_cfg.selector.solver.repeats': 2
    })
    lines = [f"_base_ = 'mmal::{DEMO}'"]
    lines += [f'{key} = {_py(value)}' for key, value in nested.items()]
    path = _outside(tmp_path, '\n'.join(lines) + '\n')
    work_dir = tmp_path / 'work'
    script = osp.join(REPO, 'tools', 'al_train.py')
    cmd = [sys.executable, script, path, '--work-dir', str(work_dir)]
    # one thread, as each test worker has (two threads on a shared core
    # take several times as long)
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(work_dir / 'al_state.json') as f:
        state = json.load(f)
    assert len(state['cycles']) == 2
    assert state['cycles'][0]['num_selected'] == 4
