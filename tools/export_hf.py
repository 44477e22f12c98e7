"""Export a trained mma model as transformers folders, one per modality (see docs/export.md).

    python tools/export_hf.py configs/lavin_7b_sqa_real_weights.py --checkpoint adapters.pth \
        --out work_dirs/hf [--modality text image] [--family llama] [--dtype fp16]

The adapters are folded for each modality (:func:`mma.models.merge_lavin`) and written to
``OUT/text`` (the LLM as a causal LM: its family's architecture, or ``LlamaForCausalLM`` with
``attention_bias`` / ``mlp_bias`` for the folded biases) and ``OUT/image``
(``LlavaForConditionalGeneration`` for a LLaVA-layout model; any other layout is refused with the
reason). ``--checkpoint`` may also be a merged ``.safetensors`` from ``tools/merge_adapters.py``:
its own modality is exported. Each folder loads with ``AutoModelForCausalLM`` /
``LlavaForConditionalGeneration.from_pretrained`` (no custom code); the text folder is what vLLM
serves.
"""
import argparse
import os

import torch

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def _merged_modality(path):
    """The modality of a merged ``.safetensors`` written by tools/merge_adapters.py, else None."""
    if not path or not str(path).endswith('.safetensors') or not os.path.isfile(path):
        return None
    from safetensors import safe_open
    with safe_open(path, framework='pt') as f:
        return (f.metadata() or {}).get('mma_merged_modality')


def main(argv=None) -> None:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='adapter checkpoint or merged .safetensors '
                        '(default: the config\'s adapter_checkpoint)')
    parser.add_argument('--out', required=True, help='output folder (gets text/ and image/)')
    parser.add_argument('--modality', nargs='+', default=['text', 'image'],
                        choices=['text', 'image'])
    parser.add_argument('--family', help='LLM family to write (default: the base weights\' '
                        'config.json model_type, else llama)')
    parser.add_argument('--dtype', default='fp32', choices=list(DTYPES),
                        help='dtype of the loaded and written weights')
    parser.add_argument('--max-shard-size', default='5GB')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--debug', action='store_true', help='tracebacks for user errors')
    args = parser.parse_args(argv)

    import mma
    from mma.errors import MMAUserError, report_user_errors
    from mma.export import export_hf
    from mma.models.merge import merge_lavin
    with report_user_errors('tools/export_hf.py', args.debug):
        merged_for = _merged_modality(args.checkpoint)
        modalities = args.modality
        if merged_for is not None:
            if merged_for not in modalities:
                raise MMAUserError(f'{args.checkpoint} is merged for {merged_for!r}; it cannot '
                                   f'be exported for {modalities}')
            modalities = [merged_for]
        model = mma.load_model(args.config, args.checkpoint, cfg_options=args.cfg_options,
                               dtype=DTYPES[args.dtype])
        if getattr(model, 'vision', None) is None and 'image' in modalities:
            if args.modality != ['text', 'image']:
                raise MMAUserError('--modality image: the model has no vision encoder')
            modalities = ['text']
        for modality in modalities:
            merged = model if merged_for is not None else merge_lavin(model, modality)
            out = os.path.join(args.out, modality)
            arch = export_hf(merged, out, modality, family=args.family,
                             max_shard_size=args.max_shard_size)
            print(f'wrote {out}: {arch}')
            del merged


if __name__ == '__main__':
    main()
