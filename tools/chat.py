"""Chat with a LaVIN model in the terminal (the chatbot recipe's ``Instruction: …\\nResponse:``).

    python tools/chat.py CONFIG [CHECKPOINT] [--image PATH] [--max-new-tokens 256]
    echo "What is in the image?" | python tools/chat.py CONFIG CKPT --image cat.jpg

Each line read from stdin is one user turn; the reply streams to stdout. Earlier turns are kept
as history, oldest dropped first when the prompt would not fit the context.
"""
import argparse
import sys
from typing import List, Tuple

import torch
from mmengine.config import Config, DictAction


def parse_args():
    p = argparse.ArgumentParser(description='Chat with a LaVIN model')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='adapter-only weights')
    p.add_argument('--image', help='image the conversation is about')
    p.add_argument('--max-new-tokens', type=int, default=256)
    p.add_argument('--temperature', type=float, default=0.0, help='0 = greedy')
    p.add_argument('--top-p', type=float, default=0.75)
    p.add_argument('--seed', type=int, default=0, help='seeds sampling, and random base weights when the config sets no '
                   'randomness.seed')
    p.add_argument('--max-context', type=int, help='context limit (default: the LLM max_seq_len)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def build_prompt(history: List[Tuple[str, str]], question: str) -> str:
    from mma.datasets import instruction
    return ''.join(f'{instruction(q)} {a}\n' for q, a in history) + instruction(question)


def fit_history(fits, history, question):
    """Drop the oldest turns until ``fits(prompt)`` (the prompt leaves room for the answer)."""
    history = list(history)
    while history and not fits(build_prompt(history, question)):
        history.pop(0)
    return history


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import mma
    from mma.datasets import LoadLaVINImage, collate_question, prediction_pipeline
    torch.manual_seed(args.seed)
    model = mma.load_model(cfg, args.checkpoint)
    if model.tokenizer is None:
        raise ValueError('the model config needs a tokenizer for chat')
    pipeline = prediction_pipeline(model)  # the layout of evaluation, from the model's facts
    tokenize = pipeline[-1]
    image = None
    if args.image:
        if model.vision is None:
            raise ValueError('--image: the model of this config has no vision encoder')
        image = next(t for t in pipeline if isinstance(t, LoadLaVINImage)).load(args.image)
    limit = args.max_context or model.llm.max_seq_len

    def fits(prompt: str) -> bool:  # positions as the model counts them (mma.sequence)
        positions, _, _ = tokenize.measure(dict(prompt=prompt, img_path=args.image))
        return positions + args.max_new_tokens <= limit

    interactive = sys.stdin.isatty()
    history: List[Tuple[str, str]] = []
    while True:
        if interactive:
            print('User: ', end='', flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        history = fit_history(fits, history, question)
        batch = collate_question(pipeline, build_prompt(history, question), args.image, image)
        print('Assistant: ', end='', flush=True)
        out = model.generate(batch['inputs'], on_text=lambda i, t: print(t, end='', flush=True),
                             max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                             top_p=args.top_p, seed=args.seed, stop_strings=['\nInstruction:'])
        print(flush=True)
        history.append((question, out.texts[0].strip()))


if __name__ == '__main__':
    main()
