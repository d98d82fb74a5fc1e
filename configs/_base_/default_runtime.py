# Runtime shared by every gear config: runner, hooks, logging, checkpoints, visualisation.
# Multi-process: each experiment lists a strategies/ fragment beside this one (ddp.py: DDP per
# trainable module; zero*.py: DeepSpeed).
default_scope = 'gear'
runner_type = 'GearRunner'  # atomic checkpoints, strict loading, CPU process groups

_log_interval = 50  # steps between log lines; the codebook monitor uses the same window
_checkpoint_interval = 1000

# Every hook that the pipeline and resume depend on is a default hook, keyed by name, so an
# experiment changes one (default_hooks=dict(logger=dict(interval=20))) or removes one
# (export_weights=None) without re-listing the others; custom_hooks holds the optional ones
# (visualisation, validation at step 0). Hooks run in priority order, ties in registration
# order: mmengine's six first, then the six below, then custom_hooks.
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=_log_interval, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # every `interval` steps, every `time_interval` minutes (None: off) and on SIGINT / SIGTERM
    checkpoint=dict(type='GearCheckpointHook', by_epoch=False, interval=_checkpoint_interval,
                    max_keep_ckpts=3, save_last=True, time_interval=None),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # before RuntimeInfoHook: the step's outputs stay on the device, one sync per log window
    log_sync=dict(type='LogSyncHook'),
    rng_state=dict(type='RNGStateHook'),  # RNG states in checkpoints: exact resume
    # codebook usage in the log; a window below 5 % usage is a collapse: warned about, or the
    # run stopped with stop_on_collapse=True (min_perplexity: a fraction of K, also checkable)
    codebook_monitor=dict(type='CodebookMonitorHook', min_usage=0.05, stop_on_collapse=False),
    export_weights=dict(type='ExportWeightsHook'),  # {work_dir}/final.pth: the next stage's input
    # a run on pre-extracted codes (CodesDataset) starts only with the tokenizer and teachers
    # they were extracted with (docs/codes.md); a no-op for runs on images
    codes_check=dict(type='CodesCheckHook'),
    # SIGINT / SIGTERM: a checkpoint at the next step boundary, exit 130 / 143 (not under SLURM,
    # where submitit handles them)
    signals=dict(type='SignalHook'),
    # {work_dir}/progress.json (step, max_iters, time per step, ETA), rewritten atomically at
    # most every `interval` s: what tools/pipeline.py prints while a stage runs
    progress=dict(type='ProgressHook', interval=5),
)
custom_hooks = []
# The non-finite watchdog (gear/engine/nonfinite.py): the first NaN / inf loss term or gradient
# norm stops the run, read from the values log_sync fetches anyway (no extra host sync); the
# state at the stop goes to nonfinite_iter_N.pth. dict(policy='skip', max_consecutive_skips=N)
# skips a group's non-finite update instead (one host sync per group per step); None: off.
nonfinite = dict(policy='stop')

# dist_cfg.timeout (s): a collective that some rank never reaches fails the run after this long
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl', timeout=1800))
randomness = dict(seed=0, deterministic=False)

visualizer = dict(type='Visualizer',
                  vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
# Training outputs ('{phase}/{name}'), grad norms and times are averaged over the logging window
# (LogSyncHook replays each step's values, so these are true window means); learning rates,
# validation metrics and the assignment statistics ('assign/{name}', computed on logged steps
# only: two log-softmaxes over (B, N, K)) show their latest value; codebook statistics are
# already window totals. mmengine applies the pattern to validation keys too, with their 'val/'
# removed: it is anchored to the training keys, or 'val/loss_ntp' would be the mean of the last
# `window_size` validations.
log_processor = dict(by_epoch=False, window_size=_log_interval,
                     mean_pattern=r'^(time|data_time)$|^grad_norm/|^(tokenizer|discriminator|prior)/',
                     custom_cfg=[dict(data_src=f'codebook/tokenizer/{k}', method_name='mean', window_size=1)
                                 for k in ('usage', 'perplexity', 'entropy')])
log_level = 'INFO'
load_from = None
resume = False
