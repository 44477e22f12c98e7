"""Engine: token-mean loops, optimiser wrappers, hooks, the mmengine fixes, atomic checkpoint
saving."""
from .atomic_checkpoint import AtomicCheckpointHook, atomic_write
from .distributed import cpu_ddp_wrapper_cfg, init_distributed, setup_distributed
from .fsdp import CompatFSDPStrategy
from .hooks import (GlobalLossLogHook, PerIterationSeedHook, TrainableCheckpointHook,
                    VocabCheckHook, trainable_keys)
from .mmengine_fixes import apply_mmengine_fixes, register_safe_checkpoint_loader
from .loops import (TokenMeanEpochBasedTrainLoop, TokenMeanIterBasedTrainLoop, loss_factor,
                    token_mean_batches, window_length)
from .runner import MMARunner, quiet_console, runner_with_model, sync_data_with_model
from .start_checks import StartChecksHook, lr_trajectory, schedule_warnings
from .optim_wrappers import (NonFiniteLossError, SkipNonFiniteAmpOptimWrapper,
                             SkipNonFiniteCPUAmpOptimWrapper, SkipNonFiniteOptimWrapper,
                             TrainableOptimWrapperConstructor)
from .visualizer import MMAVisualizer

__all__ = [
    'AtomicCheckpointHook', 'atomic_write', 'MMAVisualizer', 'MMARunner', 'quiet_console',
    'CompatFSDPStrategy', 'apply_mmengine_fixes', 'cpu_ddp_wrapper_cfg', 'init_distributed',
    'register_safe_checkpoint_loader',
    'setup_distributed', 'PerIterationSeedHook',
    'TrainableCheckpointHook', 'VocabCheckHook', 'trainable_keys', 'TokenMeanEpochBasedTrainLoop',
    'TokenMeanIterBasedTrainLoop', 'loss_factor', 'token_mean_batches', 'window_length',
    'NonFiniteLossError', 'SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper',
    'SkipNonFiniteCPUAmpOptimWrapper',
    'TrainableOptimWrapperConstructor', 'MMARunner', 'runner_with_model', 'sync_data_with_model',
    'StartChecksHook', 'lr_trajectory', 'schedule_warnings',
    'GlobalLossLogHook'
]
