"""HF ``tokenizer.json`` tokenizers (LLaMA-3 and Qwen2.5 styles, trained in-process) give
``transformers``' ids and special tokens; the picker takes the file a folder holds; the vocabulary
check accepts a padded embedding and rejects ids that do not fit."""
import json
import os

import pytest

from mma.llms import HFTokenizer, SentencePieceTokenizer, build_tokenizer
from mma.llms.checkpoints import check_tokenizer_vocab
from mma.registry import TOKENIZERS
from mma.toy import train_hf_tokenizer

from conftest import sentences

STYLES = ('llama3', 'qwen2.5')
TEXTS = ('Question: what color is the sky\nContext: N/A\nOptions: (A) red (B) blue\nResponse:',
         ' The answer is A. BECAUSE: the sky is blue', 'Image: N/A', 'naïve café ✓ 42',
         'a <|end_of_text|> b <|endoftext|>c<|im_end|>')


@pytest.fixture(scope='module', params=STYLES)
def hf_folder(request, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp(request.param))
    train_hf_tokenizer(sentences(), folder, style=request.param)
    return folder


def test_ids_and_special_tokens_equal_transformers(hf_folder):
    transformers = pytest.importorskip('transformers')
    ref = transformers.AutoTokenizer.from_pretrained(hf_folder)
    tok = build_tokenizer(hf_folder)
    assert isinstance(tok, HFTokenizer) and tok.vocab_size == len(ref)
    assert (tok.bos_id, tok.eos_id) == (ref.bos_token_id, ref.eos_token_id)
    assert tok.pad_id == (ref.pad_token_id if ref.pad_token_id is not None else -1)
    assert tok.eos_id is not None and tok.eos_id >= 256  # an added token, read from the file
    for text in TEXTS:
        assert tok.encode(text) == ref.encode(text, add_special_tokens=False), text
        # transformers adds LLaMA-3's BOS through the post-processor and nothing for Qwen
        assert tok.encode(text, bos=True) == ref.encode(text), text
        ids = tok.encode(text, bos=True, eos=True)
        assert ids[-1] == tok.eos_id
        assert tok.decode(ids + [tok.vocab_size + 5]) == ref.decode(ids, skip_special_tokens=True)
    assert tok.decode(tok.encode(TEXTS[0])) == TEXTS[0]


def test_llama3_and_qwen_layouts(tmp_path):
    l3 = build_tokenizer(train_hf_tokenizer(sentences(), str(tmp_path / 'l3'), 'llama3'))
    qw = build_tokenizer(train_hf_tokenizer(sentences(), str(tmp_path / 'qw'), 'qwen2.5'))
    vocab = l3.tok.get_vocab()
    assert l3.bos_id == vocab['<|begin_of_text|>'] and l3.eos_id == vocab['<|end_of_text|>']
    assert l3.pad_id == -1
    vocab = qw.tok.get_vocab()
    assert qw.bos_id is None and qw.eos_id == qw.pad_id == vocab['<|endoftext|>']
    assert qw.encode('hi', bos=True) == qw.encode('hi')  # no BOS to add


def test_files_written_by_transformers_save_pretrained(tmp_path):
    """Special tokens as transformers' PreTrainedTokenizerFast.save_pretrained writes them."""
    transformers = pytest.importorskip('transformers')
    from tokenizers import Tokenizer
    src = train_hf_tokenizer(sentences(), str(tmp_path / 'src'), 'qwen2.5')
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(src),
                                                eos_token='<|im_end|>', pad_token='<|endoftext|>')
    fast.save_pretrained(str(tmp_path / 'saved'))
    tok = build_tokenizer(str(tmp_path / 'saved'))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (None, fast.eos_token_id, fast.pad_token_id)
    assert tok.eos_id != tok.pad_id
    assert tok.encode(TEXTS[4]) == fast.encode(TEXTS[4], add_special_tokens=False)


def _write(folder, name, obj):
    with open(os.path.join(folder, name), 'w') as f:
        json.dump(obj, f)


def test_older_config_layouts_and_precedence(tmp_path):
    """transformers 4.x ``AddedToken`` dicts, ``special_tokens_map.json`` and
    ``generation_config.json`` (a list of stop ids) fill in what ``tokenizer_config.json`` lacks;
    an explicit null stays "none"."""
    folder = str(tmp_path)
    train_hf_tokenizer(sentences(), folder, 'llama3')
    vocab = HFTokenizer(folder).tok.get_vocab()
    bot, eot = vocab['<|begin_of_text|>'], vocab['<|end_of_text|>']
    _write(folder, 'tokenizer_config.json', dict(
        bos_token=dict(__type='AddedToken', content='<|begin_of_text|>', lstrip=False),
        added_tokens_decoder={str(bot): dict(content='<|begin_of_text|>', special=True)}))
    _write(folder, 'special_tokens_map.json', dict(bos_token='<|end_of_text|>'))
    _write(folder, 'generation_config.json', dict(bos_token_id=7, eos_token_id=[eot, bot]))
    tok = HFTokenizer(folder)
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (bot, eot, -1)
    _write(folder, 'tokenizer_config.json', dict(bos_token=None, pad_token='<|end_of_text|>'))
    tok = HFTokenizer(os.path.join(folder, 'tokenizer.json'))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (None, eot, eot)


def test_unknown_special_token_is_a_clear_error(tmp_path):
    folder = str(tmp_path)
    train_hf_tokenizer(sentences(), folder, 'llama3')
    _write(folder, 'tokenizer_config.json', dict(eos_token='</s>'))
    with pytest.raises(ValueError, match=r"tokenizer_config.json: eos_token '</s>' is not a token"):
        HFTokenizer(folder)
    os.remove(os.path.join(folder, 'tokenizer_config.json'))
    _write(folder, 'generation_config.json', dict(eos_token_id=10**6))
    with pytest.raises(ValueError, match=r'generation_config.json: eos_token_id=1000000 is '
                       'outside the vocabulary'):
        HFTokenizer(folder)


def test_picker_takes_the_file_the_folder_holds(tmp_path, tokenizer_path):
    hf = str(tmp_path / 'hf' / '8B')
    train_hf_tokenizer(sentences(), hf, 'llama3')
    sp = tmp_path / 'sp' / '7B'
    sp.mkdir(parents=True)
    os.link(tokenizer_path, sp.parent / 'tokenizer.model')  # Meta layout: one level up
    assert isinstance(build_tokenizer(hf), HFTokenizer)
    assert isinstance(build_tokenizer(os.path.join(hf, 'tokenizer.json')), HFTokenizer)
    assert isinstance(TOKENIZERS.build(dict(type='AutoTokenizer', path=str(sp))),
                      SentencePieceTokenizer)
    assert build_tokenizer(tokenizer_path).vocab_size == 512
    # a config's SentencePieceTokenizer(model_path=...) switches by its type alone
    assert isinstance(TOKENIZERS.build(dict(type='AutoTokenizer', model_path=hf)), HFTokenizer)
    (tmp_path / 'x' / 'empty').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'empty holds no tokenizer: expected '
                       r'tokenizer.model \(sentencepiece\) or tokenizer.json'):
        build_tokenizer(str(tmp_path / 'x' / 'empty'))


@pytest.mark.parametrize('style', STYLES)
def test_vocab_check_accepts_padding_and_rejects_ids_that_do_not_fit(tmp_path, style):
    path = train_hf_tokenizer(sentences(), str(tmp_path), style)
    n = HFTokenizer(path).vocab_size
    check_tokenizer_vocab(path, n, 'model.llm')
    check_tokenizer_vocab(path, -(-n // 128) * 128, 'model.llm')  # Qwen-style padded rows
    with pytest.raises(ValueError, match=rf'tokenizer {path} has {n} pieces but model.llm has '
                       rf'vocab_size {n - 1} \(ids up to {n - 1} do not fit the embedding\)'):
        check_tokenizer_vocab(path, n - 1, 'model.llm')
    # far more rows than padding: another model's vocabulary
    with pytest.raises(ValueError, match=rf'has {n} pieces but model.llm has vocab_size '
                       rf'{n + 1000} \(more rows than padding'):
        check_tokenizer_vocab(path, n + 1000, 'model.llm')


def test_sentencepiece_vocab_must_match_exactly(tokenizer_path):
    with pytest.raises(ValueError, match='has 512 pieces but m has vocab_size 640: use the '
                       'tokenizer that ships'):
        check_tokenizer_vocab(tokenizer_path, 640, 'm')


@pytest.mark.parametrize('rows', ['padded', 'too_few'])
def test_hf_weights_folder_with_tokenizer_json(tmp_path, rows):
    """A transformers-saved weights folder with its tokenizer.json: the loader finds the
    tokenizer, accepts a padded embedding and stops when the ids do not fit."""
    transformers = pytest.importorskip('transformers')
    import torch
    from mma.llms import build_llama_from_folder
    path = train_hf_tokenizer(sentences(), str(tmp_path), 'qwen2.5')
    n = HFTokenizer(path).vocab_size
    vocab = -(-n // 64) * 64 if rows == 'padded' else n - 2
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=2, max_position_embeddings=64)
    transformers.LlamaForCausalLM(cfg).save_pretrained(str(tmp_path))
    if rows == 'padded':
        model = build_llama_from_folder(str(tmp_path))
        ids = torch.tensor([build_tokenizer(str(tmp_path)).encode('the sky is red')])
        assert model.output.weight.shape[0] == vocab > n and ids.max() < vocab
    else:
        with pytest.raises(ValueError, match=rf'tokenizer {path} has {n} pieces but checkpoint '
                           rf'.* has vocab_size {n - 2} \(ids up to {n - 1} do not fit'):
            build_llama_from_folder(str(tmp_path))
