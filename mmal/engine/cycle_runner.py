"""The mmengine Runner of one cycle's training or evaluation."""
from mmengine.runner import Runner


class CycleRunner(Runner):
    """An mmengine :class:`~mmengine.runner.Runner` whose environment report
    can be switched off.

    mmengine's Runner logs the whole environment (``System environment:``
    with torch's, OpenCV's and the compilers' build flags, about 3 KB, then
    ``Runtime environment:``) to the console and its log file when it is
    built. An active-learning run builds one Runner per training and per
    evaluation, and the report is the same every time, so the driver sets
    ``log_env=False`` in the config of every Runner but the first of a run.
    The config itself is still logged: it differs per cycle (work dir,
    labeled ids, seed). mmengine reads optional settings from the runner's
    config in the same way (``compile``).
    """

    def _log_env(self, env_cfg: dict) -> None:
        if self.cfg.get('log_env', True):
            super()._log_env(env_cfg)
        elif self.cfg._cfg_dict:  # what mmengine logs after the environment
            self.logger.info(f'Config:\n{self.cfg.pretty_text}')
