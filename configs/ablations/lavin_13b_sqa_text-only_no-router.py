# LaVIN-13B version of the paper's "text adapters only" row: plain RepAdapters in the LLM, no image
# input at all.
_base_ = ['./lavin_13b_sqa_text-only.py']

model = dict(llm_adapter=dict(_delete_=True, type='RepAdapter', hidden_dim=8, groups=2, scale=1.0,
                              dropout=0.1))
