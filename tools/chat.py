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


def fit_history(tokenizer, history, question, budget: int):
    """Drop the oldest turns until the prompt fits ``budget`` tokens."""
    history = list(history)
    while history and len(tokenizer.encode(build_prompt(history, question))) > budget:
        history.pop(0)
    return history


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import mma
    from mma.datasets import LoadLaVINImage, TokenizeForLaVIN, mma_collate
    torch.manual_seed(args.seed)
    model = mma.load_model(cfg, args.checkpoint)
    tok = model.tokenizer
    if tok is None:
        raise ValueError('the model config needs a tokenizer for chat')
    image = None
    if args.image:
        image = LoadLaVINImage(size=model.vision.image_size).load(args.image)
    tokenize = TokenizeForLaVIN(tok, max_len=None, with_answer=False)
    limit = args.max_context or model.llm.max_seq_len
    budget = limit - args.max_new_tokens - 3 - model.num_visual_tokens * (image is not None)
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
        history = fit_history(tok, history, question, budget)
        batch = mma_collate([tokenize(dict(prompt=build_prompt(history, question),
                                           img_path=args.image, image=image))])
        print('Assistant: ', end='', flush=True)
        out = model.generate(batch['inputs'], on_text=lambda i, t: print(t, end='', flush=True),
                             max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                             top_p=args.top_p, seed=args.seed, stop_strings=['\nInstruction:'])
        print(flush=True)
        history.append((question, out.texts[0].strip()))


if __name__ == '__main__':
    main()
