"""Shared tiny fixtures: a SentencePiece tokenizer trained in-process and a tiny LaVIN whose
adapters are randomised (zero-initialised adapters would make routing invisible)."""
import os

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')

WORDS = ('the answer is A B C D E because image question context options response instruction '
         'a cat dog sits on mat red blue green yes no what color is sky grass two three four '
         'which animal can fly swim run plant water sun light heat magnet pull push N/A').split()


def sentences(n: int = 400):
    g = torch.Generator().manual_seed(0)
    out = ['Image: ', 'Image: N/A', 'The answer is A. BECAUSE: ', 'Question: Context: Options: (A) (B)',
           'Instruction: Response:']
    for _ in range(n):
        k = int(torch.randint(3, 12, (1,), generator=g))
        out.append(' '.join(WORDS[int(i)] for i in torch.randint(len(WORDS), (k,), generator=g)))
    return out


@pytest.fixture(scope='session')
def tokenizer_path(tmp_path_factory):
    from mma.testing import train_tokenizer
    return train_tokenizer(sentences(), str(tmp_path_factory.mktemp('tok') / 'tokenizer.model'),
                           vocab_size=512)


@pytest.fixture(scope='session')
def tokenizer(tokenizer_path):
    from mma.llms.tokenizer import SentencePieceTokenizer
    return SentencePieceTokenizer(tokenizer_path)


def randomize_adapters(model, seed: int = 0, std: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * std)
    return model


@pytest.fixture
def tiny_model(tokenizer_path):
    import mma
    from mma.testing import tiny_lavin_cfg
    torch.manual_seed(0)
    cfg = tiny_lavin_cfg(vocab_size=512)
    cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    model = mma.build_model(cfg)
    return randomize_adapters(model).eval()
