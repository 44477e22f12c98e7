"""Make the demo's tiny backbones real pretrained models before they are frozen.

MMA assumes a pretrained LLM and a pretrained vision encoder. For the CPU demo both are tiny and
trained here in seconds: the ViT learns to recognise the colour and shape of drawn objects (as a
CLIP tower encodes what is in a picture), the LLaMA learns the synthetic text as a language model.
Both are saved in the real file formats mma loads (an open_clip ``visual.*`` state dict; a Meta
LLaMA folder), so the demo goes through the same loading code as real weights.
"""
import json
import os
import random
import shutil
from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .synthetic import COLOURS, SHAPES, draw

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_tensor(img) -> torch.Tensor:
    import numpy as np
    x = torch.from_numpy(np.asarray(img, dtype='float32') / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


def pretrain_vit(path: str, vision_cfg: dict, steps: int = 300, batch_size: int = 64,
                 lr: float = 2e-3, seed: int = 0, log: Callable[[str], None] = print) -> float:
    """Train a tiny open_clip ViT to tell the colour and shape of a drawn object from the CLS
    token of its last block; save its weights as an open_clip state dict (``visual.*`` keys).

    Returns:
        Accuracy (both colour and shape right) on 256 fresh images.
    """
    from mma.encoders import CLIPViT
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vit = CLIPViT(model_name=None, vision_cfg=vision_cfg, quick_gelu=True,
                  out_indices=[vision_cfg['layers'] - 1])
    colours, shapes = list(COLOURS), list(SHAPES)
    head = nn.Linear(vit.width, len(colours) + len(shapes))
    opt = torch.optim.AdamW(list(vit.parameters()) + list(head.parameters()), lr=lr,
                            weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    size = vision_cfg['image_size']

    def sample(n):
        cs = [rng.randrange(len(colours)) for _ in range(n)]
        ss = [rng.randrange(len(shapes)) for _ in range(n)]
        x = torch.stack([_to_tensor(draw(shapes[s], colours[c], rng, size))
                         for c, s in zip(cs, ss)])
        return x, torch.tensor(cs), torch.tensor(ss)

    vit.train()
    for step in range(steps):
        x, c, s = sample(batch_size)
        logits = head(vit(x)[:, -1])
        loss = F.cross_entropy(logits[:, :len(colours)], c) + F.cross_entropy(
            logits[:, len(colours):], s)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0 or step == 0:
            log(f'  ViT pretraining step {step + 1}/{steps}: loss {loss.item():.3f}')
    vit.eval()
    with torch.no_grad():
        x, c, s = sample(256)
        logits = head(vit(x)[:, -1])
        acc = ((logits[:, :len(colours)].argmax(-1) == c) &
               (logits[:, len(colours):].argmax(-1) == s)).float().mean().item()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({f'visual.{k}': v for k, v in vit.tower.state_dict().items()}, path)
    return acc


def pretrain_llm(folder: str, docs: Sequence[Sequence[int]], tokenizer, params: dict,
                 steps: int = 400,
                 batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
                 log: Callable[[str], None] = print) -> float:
    """Train a tiny LLaMA as a language model on token sequences ``docs``; save a Meta folder
    (``params.json``, ``consolidated.00.pth``, the tokenizer file).

    Returns:
        The mean training loss of the last 20 steps.
    """
    from mma.llms import LLaMA
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = dict(params, vocab_size=params.get('vocab_size') or tokenizer.vocab_size)
    model = LLaMA(**params)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    losses = []
    model.train()
    for step in range(steps):
        batch = [docs[rng.randrange(len(docs))] for _ in range(batch_size)]
        length = max(len(d) for d in batch)
        ids = torch.zeros(batch_size, length, dtype=torch.long)
        tgt = torch.full((batch_size, length), -100)
        for i, d in enumerate(batch):
            ids[i, :len(d)] = torch.tensor(d)
            tgt[i, :len(d) - 1] = torch.tensor(d[1:])
        loss = F.cross_entropy(model.logits(ids).flatten(0, 1), tgt.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step == 0:
            log(f'  LLM pretraining step {step + 1}/{steps}: loss {loss.item():.3f}')
    os.makedirs(folder, exist_ok=True)
    meta_params = {k: v for k, v in params.items() if k not in ('preset', )}
    with open(os.path.join(folder, 'params.json'), 'w') as f:
        json.dump(meta_params, f, indent=2)
    torch.save(model.state_dict(), os.path.join(folder, 'consolidated.00.pth'))
    tok_file = os.path.join(folder, os.path.basename(tokenizer.model_path))
    if os.path.abspath(tokenizer.model_path) != os.path.abspath(tok_file):
        if not tok_file.endswith('.model'):
            raise ValueError(f'write the tokenizer.json into {folder}: its config files go with '
                             'it')
        shutil.copyfile(tokenizer.model_path, tok_file)
    return sum(losses[-20:]) / min(20, len(losses))


def problem_sequences(problems: dict, qids: Sequence[str], tokenizer,
                      prompt_format: str = 'QCM-ALE', image_prefix: str = 'Image: ',
                      text_prefix: str = 'Image: N/A') -> List[List[int]]:
    """LM pretraining documents in the exact token layout LaVIN sees (visual tokens aside):
    ``[BOS] prefix prompt answer [EOS]``. Image questions come without their answer: a text
    model cannot know it, and must not learn a guess."""
    from mma.datasets import TokenizeForLaVIN
    from mma.datasets.prompts import build_prompt
    layouts = {with_answer: TokenizeForLaVIN(tokenizer, max_len=None, num_visual_tokens=0,
                                             image_prefix=image_prefix, text_prefix=text_prefix,
                                             with_answer=with_answer, meta_keys=())
               for with_answer in (True, False)}
    docs = []
    for qid in qids:
        p = problems[qid]
        prompt, answer = build_prompt(p, prompt_format)
        has_image = bool(p.get('image'))
        sample = layouts[not has_image](dict(prompt=prompt, answer=answer, qid=qid,
                                             img_path='image' if has_image else None))
        docs.append(sample['inputs']['input_ids'].tolist())
    return docs


def problem_texts(problems: dict, qids: Sequence[str], prompt_format: str = 'QCM-ALE') -> List[str]:
    """The texts a tokenizer for the demo is trained on (prompts and answers)."""
    from mma.datasets.prompts import build_prompt
    out = ['Image: ', 'Image: N/A']
    for qid in qids:
        out.extend(build_prompt(problems[qid], prompt_format))
    return out
