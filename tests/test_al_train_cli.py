"""tools/al_train.py: a user's mistake is one message, mmal's a traceback."""
import os.path as osp
import runpy
import subprocess
import sys

import pytest

from mmal.engine import ActiveLearningRunner
from conftest import REPO

SCRIPT = osp.join(REPO, 'tools', 'al_train.py')


def _main(monkeypatch, *argv):
    """tools/al_train.py's main() in this process, with ``argv``."""
    monkeypatch.setattr(sys, 'argv', [SCRIPT, *argv])
    return runpy.run_path(SCRIPT)['main']()


def test_a_missing_config_is_one_line_and_exit_2(tmp_path):
    missing = str(tmp_path / 'nope.py')
    proc = subprocess.run([sys.executable, SCRIPT, missing],
                          capture_output=True,
                          text=True,
                          cwd=REPO)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'al_train.py: error: config file not found: {missing}')


def test_a_bad_al_cfg_key_is_a_message_without_traceback(
        tmp_path, monkeypatch, capsys):
    config = tmp_path / 'typo.py'
    config.write_text(
        f"_base_ = {osp.join(REPO, 'configs', 'random_fcos_shapes.py')!r}\n"
        'al_cfg = dict(budgett=3)\n')
    with pytest.raises(SystemExit) as exit_:
        _main(monkeypatch, str(config), '--work-dir', str(tmp_path / 'w'))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("al_train.py: error: unknown al_cfg keys in "
                          f"{config}: ['budgett']")
    assert len(err.strip().splitlines()) == 1
    assert 'Traceback' not in err


def test_an_internal_error_keeps_its_traceback(tmp_path, monkeypatch):
    """main() lets mmal's own failures through: Python prints them with
    their traceback and exits 1."""

    def crash(self):
        raise RuntimeError('an internal failure')

    monkeypatch.setattr(ActiveLearningRunner, 'run', crash)
    with pytest.raises(RuntimeError, match='an internal failure'):
        _main(monkeypatch, osp.join(REPO, 'configs',
                                    'random_fcos_shapes.py'), '--work-dir',
              str(tmp_path), '--cfg-options', 'demo_data.num_train=4',
              'demo_data.num_val=2', 'demo_data.img_size=32')
