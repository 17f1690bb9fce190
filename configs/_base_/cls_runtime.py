# mmpretrain's default runtime (hooks, logging, visualizer, env).
_base_ = 'mmpretrain::_base_/default_runtime.py'

# One checkpoint per epoch, only the last kept: an interrupted training
# resumes from it, and a finished cycle keeps just its final weights.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
