# LaVIN-7B ScienceQA recipe under FSDP (mmengine FlexibleRunner + FSDPStrategy): the frozen LLaMA is
# sharded across GPUs, for GPUs that cannot hold a full copy. Same recipe as lavin_7b_sqa.py.
#   torchrun --nproc_per_node 8 tools/train.py configs/lavin_7b_sqa_fsdp.py --launcher pytorch \
#       --cfg-options optim_wrapper.accumulative_counts=1
# (tools/train.py sets model_wrapper.device_id=cpu when there is no CUDA.)
_base_ = ['./lavin_7b_sqa.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='mma.CompatFSDPStrategy',  # FSDPStrategy + the documented resume fix (mma.engine.fsdp)
    state_dict_cfg='full',
    model_wrapper=dict(
        use_orig_params=True,  # units mix frozen and trainable parameters
        auto_wrap_policy=dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
                              min_num_params=int(1e7))),
)
# FSDP shows paramwise_cfg flattened shards, so "no decay on 1-d parameters" would hit every
# parameter; mma's 1-d trainable tensors are exactly the biases (bias_decay_mult=0).
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=1.0))
