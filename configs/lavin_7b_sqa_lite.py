# LaVIN-lite 7B: the real-weights config with the frozen LLM linears in 4-bit NF4 (bitsandbytes)
# and a paged 32-bit AdamW. CUDA only: without a GPU building the model fails with a clear message.
_base_ = ['./lavin_7b_sqa_real_weights.py']

model = dict(llm=dict(quantization='nf4'))  # or 'fp4', 'int8'
optim_wrapper = dict(optimizer=dict(type='PagedAdamW32bit'))
