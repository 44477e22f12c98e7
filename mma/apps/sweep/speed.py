"""Sweep columns for comparing adaptation methods: the method of a run's config, and how fast its
merged model decodes relative to the bare LLM (a folded adapter costs nothing; a prefix or a
routed adapter left in place does)."""
import copy
import statistics


def method_of(cfg) -> str:
    """``'<LLM adapter type> (<placement>)'`` of a config, ``'none'`` without LLM adapters."""
    model = cfg['model']
    adapter = model.get('llm_adapter')
    if not adapter:
        return 'none'
    return f"{adapter['type']} ({model.get('llm_adapter_placement', 'attn')})"


def merged_decode_speed(cfg, batch_size: int = 4, prompt_len: int = 32, new_tokens: int = 32,
                        repeats: int = 3) -> float:
    """Greedy cached decoding throughput of the LLM merged for images
    (:func:`mma.models.merge_lavin`) divided by that of the bare LLM, median of ``repeats``.

    The model is built from the config with random weights (no files are read): the speed
    depends on what is left in the slots after merging, not on the values. On CPU, for small
    models (the tiny demo); a 7B model would need its memory.
    """
    import torch

    import mma
    from mma.apps.benchmark_inference import _bare_llm, decode_tokens_per_s
    from mma.models.merge import merge_lavin
    cfg = copy.deepcopy(cfg)
    cfg['model']['llm']['checkpoint'] = None
    if cfg['model'].get('vision'):
        cfg['model']['vision']['pretrained'] = None
    cfg['model']['adapter_checkpoint'] = None
    torch.manual_seed(0)
    model = mma.build_model(cfg).eval()
    rates = {}
    for name, llm in (('bare', _bare_llm(model)), ('merged', merge_lavin(model, 'image').llm)):
        rates[name] = statistics.median(
            decode_tokens_per_s(llm, batch_size, prompt_len, new_tokens, 'cpu')[0]
            for _ in range(repeats))
    return rates['merged'] / rates['bare']
