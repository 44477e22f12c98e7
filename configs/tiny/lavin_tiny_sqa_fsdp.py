# The tiny ScienceQA run under FSDP (mmengine FlexibleRunner + FSDPStrategy), e.g. on CPU:
#   torchrun --nproc_per_node 2 tools/train.py configs/tiny/lavin_tiny_sqa_fsdp.py --launcher pytorch
_base_ = ['./lavin_tiny_sqa.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='mma.CompatFSDPStrategy',  # mmengine's FSDPStrategy + the resume fix (mma.engine.fsdp)
    state_dict_cfg='full',      # rank 0 writes one file; TrainableCheckpointHook keeps adapters
    model_wrapper=dict(use_orig_params=True),  # frozen and trainable tensors share FSDP units
)
# FSDP shows mmengine's paramwise_cfg flattened 1-d shards, so "no decay on 1-d parameters" would
# hit every parameter; among mma's trainable tensors the 1-d ones are exactly the biases, which
# bias_decay_mult=0 already covers.
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=1.0))
