# The paper's first ablation row, "text adapters only" (82.65 on ScienceQA): plain RepAdapters in
# the LLM, no image input at all (see lavin_7b_sqa_text-only.py for how image samples are handled).
_base_ = ['./lavin_7b_sqa_text-only.py']

model = dict(llm_adapter=dict(_delete_=True, type='RepAdapter', hidden_dim=8, groups=2, scale=1.0,
                              dropout=0.1))
