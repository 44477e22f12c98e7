"""The ScienceQA data pipeline and a tiny LaVIN work with an HF ``tokenizer.json`` of either
style: LLaMA-3 (BOS ``<|begin_of_text|>``) and Qwen2.5 (no BOS); EOS is the files' own."""
import json
import os

import pytest
import torch

import mma
from mma.datasets import ScienceQADataset, mma_collate
from mma.llms import build_tokenizer
from mma.toy import make_tiny_scienceqa, tiny_lavin_cfg, train_hf_tokenizer

EOS_TOKEN = {'llama3': '<|end_of_text|>', 'qwen2.5': '<|endoftext|>'}


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('sqa')), n=6)


@pytest.fixture(scope='module', params=sorted(EOS_TOKEN))
def hf(request, sqa, tmp_path_factory):
    problems = json.load(open(os.path.join(sqa['data_root'], 'problems.json')))
    text = [f"{p['question']} {' '.join(p['choices'])} {p['lecture']}" for p in problems.values()]
    text += ['Image: N/A Question: Context: Options: Response: The answer is A. BECAUSE:'] * 5
    folder = str(tmp_path_factory.mktemp(request.param))
    path = train_hf_tokenizer(text * 3, folder, request.param)
    added = {t['content']: t['id'] for t in json.load(open(path))['added_tokens']}
    return dict(folder=folder, style=request.param, eos=added[EOS_TOKEN[request.param]],
                bos=added.get('<|begin_of_text|>'))


def dataset(sqa, hf, **kw):
    return ScienceQADataset(sqa['data_root'], split='val', pipeline=[
        dict(type='LoadLaVINImage', size=32),
        dict(type='TokenizeForLaVIN', tokenizer=dict(type='AutoTokenizer', path=hf['folder']),
             num_visual_tokens=2, **kw)])


def test_scienceqa_sequence_and_labels(sqa, hf):
    ds = dataset(sqa, hf)
    tok = build_tokenizer(hf['folder'])
    assert (tok.bos_id, tok.eos_id) == (hf['bos'], hf['eos'])
    bos = [] if hf['bos'] is None else [hf['bos']]
    for i in range(len(ds)):
        info, out = ds.get_data_info(i), ds[i]
        x = out['inputs']
        prefix = 'Image: ' if x['has_image'] else 'Image: N/A'
        head = bos + tok.encode(prefix) + tok.encode(' ' + info['prompt'])
        ans = tok.encode(' ' + info['answer']) + [hf['eos']]
        assert x['input_ids'].tolist() == head + ans
        assert x['labels'].tolist() == [-100] * len(head) + ans  # answer and EOS only
        # byte-level BPE is lossless: the sequence reads as words, as with sentencepiece
        assert tok.decode(x['input_ids'].tolist()) == f"{prefix} {info['prompt']} {info['answer']}"
        if x['has_image']:
            assert x['visual_pos'] == len(bos) + len(tok.encode('Image: '))
    batch = mma_collate([ds[i] for i in range(4)])['inputs']
    assert batch['lengths'].tolist() == [len(ds[i]['inputs']['input_ids']) for i in range(4)]


def test_tiny_lavin_trains_and_generates_with_a_padded_vocabulary(sqa, hf):
    """Qwen-style: the embedding has more rows than the tokenizer has ids (accepted); the loss
    is computed, and generation stops at the file's EOS and decodes."""
    tok = build_tokenizer(hf['folder'])
    padded = -(-tok.vocab_size // 128) * 128
    assert padded > tok.vocab_size
    cfg = tiny_lavin_cfg(vocab_size=padded)
    cfg['tokenizer'] = dict(type='AutoTokenizer', path=hf['folder'])
    torch.manual_seed(0)
    model = mma.build_model(cfg)
    model.init_weights()  # checks the tokenizer against the embedding
    batch = mma_collate([dataset(sqa, hf)[i] for i in range(4)])
    loss = model(batch['inputs'], mode='loss')['loss']
    assert torch.isfinite(loss) and loss > 0
    pred = mma_collate([dataset(sqa, hf, with_answer=False)[i] for i in range(2)])['inputs']
    free = model.eval().generate(pred, max_new_tokens=4, stop_at_eos=False)
    assert free.texts == [model.tokenizer.decode(t) for t in free.tokens]
    bias = torch.zeros(padded)
    bias[hf['eos']] = 1e4  # the EOS of the files becomes the argmax: generation stops there
    model.llm.output.register_forward_hook(lambda module, args, out: out + bias)
    out = model.generate(pred, max_new_tokens=4)
    assert out.num_generated == [1, 1] and out.tokens == [[], []]  # EOS made, then stopped
    assert out.texts == ['', '']


def test_tokenizer_that_does_not_fit_the_llm_is_a_clear_error(hf):
    tok = build_tokenizer(hf['folder'])
    cfg = tiny_lavin_cfg(vocab_size=tok.vocab_size - 1)
    cfg['tokenizer'] = dict(type='AutoTokenizer', path=hf['folder'])
    model = mma.build_model(cfg)
    with pytest.raises(ValueError, match=rf'tokenizer .*tokenizer.json has {tok.vocab_size} pieces '
                       rf'but model.llm \(the LLM weights\) has vocab_size {tok.vocab_size - 1} '
                       rf'\(ids up to {tok.vocab_size - 1} do not fit the embedding\)'):
        model.init_weights()


def test_lengths_come_from_collate_not_from_a_pad_id(sqa, hf):
    tok = build_tokenizer(hf['folder'])
    cfg = tiny_lavin_cfg(vocab_size=tok.vocab_size)
    model = mma.build_model(cfg)
    pred = mma_collate([dataset(sqa, hf, with_answer=False)[i] for i in range(2)])['inputs']
    pred['input_ids'][0, 3] = 0  # id 0 is an ordinary token ('!' here, as in LLaMA-3 and Qwen)
    assert model.prompt_lengths(pred).tolist() == (
        1 + pred['lengths'] + 2 * pred['has_image'].long()).tolist()
    with pytest.raises(ValueError, match=r"inputs\['lengths'\] is missing: batch samples with "
                       'mma_collate'):
        model.prompt_lengths(dict(pred, lengths=None))


def test_training_needs_an_eos_token(tmp_path):
    folder = str(tmp_path)
    train_hf_tokenizer(['a b c'] * 20, folder, 'qwen2.5')
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(dict(bos_token=None, eos_token=None), f)
    from mma.datasets import TokenizeForLaVIN
    with pytest.raises(ValueError, match='has no EOS token, which training appends'):
        TokenizeForLaVIN(dict(type='AutoTokenizer', path=folder))
    TokenizeForLaVIN(dict(type='AutoTokenizer', path=folder), with_answer=False)  # prediction


def test_chat_instruction_prompts(hf):
    """tools/chat.py's multi-turn prompt: history trimmed to the token budget, text layout as
    with sentencepiece (prediction stops after ``Response:``)."""
    import importlib.util
    from mma.datasets import TokenizeForLaVIN
    spec = importlib.util.spec_from_file_location(
        'chat_tool', os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'chat.py'))
    chat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chat)
    tok = build_tokenizer(hf['folder'])
    history = [('what color is the sky', 'Blue.'), ('which animal can fly', 'A bird.')]
    prompt = chat.build_prompt(history, 'and the grass')
    # positions as the model counts them: what fits the context of the last two turns
    tokenize = TokenizeForLaVIN(tok, max_len=None, num_visual_tokens=0, with_answer=False)

    def positions(p):
        return tokenize.measure(dict(prompt=p, img_path=None))[0]
    limit = positions(chat.build_prompt(history[1:], 'and the grass'))
    assert positions(prompt) > limit
    assert chat.fit_history(lambda p: positions(p) <= limit, history, 'and the grass') == \
        history[1:]
    x = TokenizeForLaVIN(tok, max_len=None, with_answer=False)(dict(prompt=prompt, img_path=None))
    ids = x['inputs']['input_ids'].tolist()
    assert ids[:len(x['inputs']['input_ids']) - len(tok.encode(' ' + prompt))] == (
        ([hf['bos']] if hf['bos'] is not None else []) + tok.encode('Image: N/A'))
    assert tok.decode(ids) == 'Image: N/A ' + prompt and prompt.endswith('Response:')
