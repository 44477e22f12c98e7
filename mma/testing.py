"""Tiny assets for tests, demos and benchmarks: a SentencePiece tokenizer trained in-process and a
tiny LaVIN config. Nothing here downloads anything."""
import io
import os
from typing import Iterable, Optional

TINY_VISION_CFG = dict(image_size=32, patch_size=8, width=64, head_width=16, layers=2,
                       mlp_ratio=4.0, embed_dim=32)


def train_tokenizer(sentences: Iterable[str], path: str, vocab_size: int = 512) -> str:
    """Train a LLaMA-style BPE SentencePiece model (unk 0, bos 1, eos 2, no pad) into ``path``."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)), model_writer=buf, vocab_size=vocab_size,
        model_type='bpe', unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True,
        num_threads=1, hard_vocab_limit=False, minloglevel=2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(buf.getvalue())
    return path


def tiny_lavin_cfg(vocab_size: int = 512, router: bool = True, vit_adapters: bool = True,
                   placement: str = 'attn', dropout: float = 0.0,
                   llm: Optional[dict] = None) -> dict:
    """A tiny LaVIN model config (LLaMA dim 64 x 2 layers, 2-block ViT of width 64 at 32 px)."""
    adapter = (dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=dropout,
                    router=dict(type='ModalityRouter', temperature=10.0))
               if router else dict(type='RepAdapter', hidden_dim=8, groups=2, dropout=dropout))
    llm_cfg = dict(type='LLaMA', preset='tiny', vocab_size=vocab_size)
    llm_cfg.update(llm or {})
    return dict(
        type='LaVIN',
        llm=llm_cfg,
        vision=dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_every=1,
                    vision_cfg=dict(TINY_VISION_CFG)),
        llm_adapter=adapter,
        llm_adapter_placement=placement,
        vit_adapter=dict(adapter) if vit_adapters else None,
        projector_hidden=16,
    )
