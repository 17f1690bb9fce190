# Runtime settings shared by every active-learning config.
# One checkpoint per epoch, only the last kept: an interrupted training
# resumes from it, and a finished cycle keeps just its final weights.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    logger=dict(type='LoggerHook', interval=50))
randomness = dict(seed=0, deterministic=False)
