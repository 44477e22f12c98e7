"""Instruct folders stop at every stop id they list (Llama-3.1: ``<|end_of_text|>``,
``<|eom_id|>``, ``<|eot_id|>``; Qwen2.5: ``<|im_end|>``, ``<|endoftext|>``), and ``stop_strings``
can name special tokens."""
import json
import os

import pytest
import torch
from tokenizers import Tokenizer

import mma
from mma.llms.hf_tokenizer import HFTokenizer
from mma.toy import train_hf_tokenizer

from tests.conftest import sentences

STYLES = {  # style -> (extra special tokens, generation_config eos_token_id names)
    'llama3': (['<|eom_id|>', '<|eot_id|>'], ['<|end_of_text|>', '<|eom_id|>', '<|eot_id|>']),
    'qwen2.5': ([], ['<|im_end|>', '<|endoftext|>']),
}


def instruct_folder(tmp_path, style, listed=None):
    extra, stops = STYLES[style]
    path = train_hf_tokenizer(sentences(), str(tmp_path), style)
    tok = Tokenizer.from_file(path)
    tok.add_special_tokens(extra)
    tok.save(path)
    ids = [tok.token_to_id(t) for t in (listed or stops)]
    with open(os.path.join(tmp_path, 'generation_config.json'), 'w') as f:
        json.dump(dict(eos_token_id=ids), f)
    return str(tmp_path), ids


def _model(tokenizer):
    torch.manual_seed(0)
    model = mma.build_model(dict(type='LaVIN', llm=dict(type='LLaMA', preset='tiny',
                                                        vocab_size=tokenizer.vocab_size)))
    model.tokenizer = tokenizer
    return model.eval()


def _inputs(tokenizer):
    ids = torch.tensor([tokenizer.encode('the answer is', bos=True)])
    return dict(input_ids=ids, has_image=torch.tensor([False]),
                lengths=torch.tensor([ids.shape[1]]))


def _emitting(model, stop: int, step: int, free):
    """The model with output rows swapped so that greedy decoding emits ``stop`` at ``step``."""
    with torch.no_grad():
        w = model.llm.output.weight
        t = free[step]
        w[[t, stop]] = w[[stop, t]]
    return model


@pytest.mark.parametrize('style', list(STYLES))
def test_generation_stops_at_each_stop_id(tmp_path, style):
    folder, ids = instruct_folder(tmp_path, style)
    tok = HFTokenizer(folder)
    assert set(tok.stop_ids) == set(ids) and tok.stop_ids[0] == tok.eos_id
    free = _model(tok).generate(_inputs(tok), max_new_tokens=6, stop_at_eos=False).tokens[0]
    assert not set(free[:3]) & set(ids) and len(set(free[:3])) == 3
    for stop in ids:
        model = _emitting(_model(tok), stop, 2, free)
        out = model.generate(_inputs(tok), max_new_tokens=6)
        assert out.tokens[0] == free[:2] and out.num_generated[0] == 3, stop
        # without the stop ids it runs on
        assert len(model.generate(_inputs(tok), max_new_tokens=6,
                                  stop_at_eos=False).tokens[0]) == 6


def test_stop_strings_name_special_tokens(tmp_path):
    folder, ids = instruct_folder(tmp_path, 'llama3', listed=['<|end_of_text|>'])
    tok = HFTokenizer(folder)
    eot = tok.tok.token_to_id('<|eot_id|>')
    assert tok.stop_ids == (tok.eos_id, ) and eot not in tok.stop_ids
    free = _model(tok).generate(_inputs(tok), max_new_tokens=6, stop_at_eos=False).tokens[0]
    model = _emitting(_model(tok), eot, 2, free)
    assert len(model.generate(_inputs(tok), max_new_tokens=6).tokens[0]) == 6  # not a stop id
    out = model.generate(_inputs(tok), max_new_tokens=6, stop_strings=['<|eot_id|>'])
    assert out.tokens[0] == free[:2] and out.num_generated[0] == 3
