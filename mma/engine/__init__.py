"""Engine: token-mean loops, optimiser wrappers, hooks, the mmengine fixes, adapter checkpoints,
atomic checkpoint saving."""
from .adapter_checkpoint import load_adapter_checkpoint, read_adapter_state
from .atomic_checkpoint import AtomicCheckpointHook, atomic_write
from .compat import (CompatFSDPStrategy, apply_mmengine_fixes, cpu_ddp_wrapper_cfg,
                     init_distributed, register_trusted_checkpoint_loader)
from .hooks import (PerIterationSeedHook, TrainableCheckpointHook, check_trainable_state_dict,
                    trainable_keys)
from .loops import (TokenMeanEpochBasedTrainLoop, TokenMeanIterBasedTrainLoop, loss_factor,
                    token_mean_batches, window_length)
from .optim_wrappers import (SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper,
                             TrainableOptimWrapperConstructor)
from .visualizer import MMAVisualizer

__all__ = [
    'AtomicCheckpointHook', 'atomic_write', 'MMAVisualizer',
    'CompatFSDPStrategy', 'apply_mmengine_fixes', 'cpu_ddp_wrapper_cfg', 'init_distributed',
    'register_trusted_checkpoint_loader', 'PerIterationSeedHook', 'TrainableCheckpointHook',
    'check_trainable_state_dict', 'trainable_keys', 'TokenMeanEpochBasedTrainLoop',
    'TokenMeanIterBasedTrainLoop', 'loss_factor', 'token_mean_batches', 'window_length',
    'SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper', 'TrainableOptimWrapperConstructor',
    'load_adapter_checkpoint', 'read_adapter_state'
]
