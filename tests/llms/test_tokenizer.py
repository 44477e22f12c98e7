import pytest

from mma.llms import SentencePieceTokenizer


def test_ids_from_model_file(tokenizer):
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (1, 2, -1)
    ids = tokenizer.encode('Image: N/A', bos=True, eos=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert tokenizer.decode(ids) == 'Image: N/A'


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.model'):
        SentencePieceTokenizer(str(tmp_path / 'nope.model'))
