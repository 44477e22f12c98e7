"""Export a merged mma model to transformers (and so vLLM): see docs/export.md."""
from .folder import export_hf, hf_model
from .llava import llava_problems, open_clip_to_hf_clip
from .llm import HF_ARCHITECTURES, llm_hf_config, llm_hf_state_dict, plan_llm

__all__ = ['HF_ARCHITECTURES', 'export_hf', 'hf_model', 'llava_problems', 'llm_hf_config',
           'llm_hf_state_dict', 'open_clip_to_hf_clip', 'plan_llm']
