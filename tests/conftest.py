import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOKENIZER_TEXT = [
    'Question: Which colour is the shape in the picture?',
    'Context: N/A', 'Options: (A) red (B) green (C) blue (D) yellow', 'Response:',
    'The answer is A. BECAUSE: the circle is red.', 'Image: ', 'Image: N/A',
    'Instruction: describe the image.', 'A small square next to a large circle.',
] * 20 + [f'sample sentence number {i} about science and grammar' for i in range(200)]


@pytest.fixture(scope='session')
def tokenizer_path(tmp_path_factory):
    from mma.testing import train_tokenizer
    return train_tokenizer(TOKENIZER_TEXT, str(tmp_path_factory.mktemp('tok') / 'tok.model'),
                           vocab_size=512)


@pytest.fixture(scope='session')
def tokenizer(tokenizer_path):
    from mma.llms import SentencePieceTokenizer
    return SentencePieceTokenizer(tokenizer_path)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
