"""A truncated or corrupt file of each kind mma reads gives an error naming that file and the kind
of file it should be (issue 14): LLaMA shard, CLIP weights, adapter checkpoint, resume checkpoint,
tokenizer, JSON in a wrong encoding. Images: tests/datasets/test_bad_input.py; ``last_checkpoint``
and ``--resume FILE`` through tools/train.py: tests/tools/test_train_errors.py."""
import json
import os
import pickle

import pytest
import torch

import mma
from mma.checkpoint_file import load_checkpoint_file
from mma.encoders import load_clip_state_dict
from mma.errors import CorruptFileError, MMAUserError
from mma.fileio import load_safetensors, read_json, torch_load
from mma.llms import SentencePieceTokenizer, save_meta_checkpoint
from mma.llms.checkpoints import meta_params
from mma.models.adapter_checkpoint import read_adapter_state_dict


def truncate(path, keep: float = 0.5) -> str:
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    return str(path)


@pytest.fixture
def saved(tmp_path):
    """A small torch checkpoint and a garbage file."""
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'projector.weight': torch.randn(64, 64)}}, path)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x00not a checkpoint' * 7)
    return str(path), str(garbage)


def test_torch_load_names_a_truncated_or_garbage_file(saved):
    good, garbage = saved
    assert torch.equal(torch_load(good, 'x', weights_only=True)['state_dict']['projector.weight'],
                       torch.load(good, weights_only=True)['state_dict']['projector.weight'])
    truncate(good)
    for path in (good, garbage):
        with pytest.raises(CorruptFileError, match=rf'cannot read {path} as a test file '
                           r'\(\w+Error: .*; file size \d+ bytes\): the file is truncated, '
                           r'corrupt or not a test file'):
            torch_load(path, 'a test file', weights_only=False)
    assert issubclass(CorruptFileError, MMAUserError) and issubclass(CorruptFileError, ValueError)


def test_truncated_llama_shard(tmp_path):
    ref = mma.llms.LLaMA(preset='tiny', vocab_size=128)
    folder = str(tmp_path / '7B')
    save_meta_checkpoint(ref.state_dict(), folder, meta_params(ref.args), 2)
    shard = truncate(os.path.join(folder, 'consolidated.01.pth'))
    model = mma.llms.LLaMA(preset='tiny', vocab_size=128, checkpoint=folder)
    with pytest.raises(CorruptFileError, match=rf'cannot read {shard} as a LLaMA weights file '
                       r'\(RuntimeError: PytorchStreamReader'):
        model.load_pretrained()


def test_corrupt_safetensors(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / 'model.safetensors')
    save_file({'w': torch.zeros(256)}, path)
    truncate(path, 0.3)
    with pytest.raises(CorruptFileError, match=rf'cannot read {path} as weights'):
        load_safetensors(path, 'weights')


def test_truncated_clip_file(tmp_path, saved):
    path = truncate(saved[0])
    with pytest.raises(CorruptFileError, match=rf'could not read CLIP weights {path} \(expected '
                       r'an open_clip/OpenAI state dict'):
        load_clip_state_dict(path)


def test_truncated_adapter_checkpoint(saved):
    path = truncate(saved[0])
    with pytest.raises(CorruptFileError, match=rf'cannot read {path} as an adapter checkpoint'):
        read_adapter_state_dict(path)
    with pytest.raises(CorruptFileError, match=rf'cannot read {saved[1]} as an adapter checkpoint'):
        read_adapter_state_dict(saved[1])


def test_truncated_resume_checkpoint(saved):
    """mmengine's resume reads through this loader (mma.checkpoint_file)."""
    path = truncate(saved[0])
    with pytest.raises(CorruptFileError,
                       match=rf'cannot read {path} as an mmengine training checkpoint'):
        load_checkpoint_file(path, map_location='cpu')
    with pytest.raises(FileNotFoundError, match='an mmengine training checkpoint not found: '):
        load_checkpoint_file(saved[0] + '.missing')


def test_mmengine_loader_takes_each_runs_permission(tmp_path):
    """The loader a tool registers carries that run's allow_unsafe_load; a later run's
    registration replaces it (nothing else in the process remembers a permission)."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    from mma.engine.mmengine_fixes import apply_mmengine_fixes
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': {}, 'message_hub': {'log': HistoryBuffer()}}, path)
    try:
        apply_mmengine_fixes(allow_unsafe=[path])
        with pytest.warns(UserWarning, match='unpickling it fully, as allowed'):
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
        apply_mmengine_fixes()
        with pytest.raises(pickle.UnpicklingError, match='epoch_1.pth: holds Python objects'):
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    finally:
        apply_mmengine_fixes()


def test_corrupt_tokenizer(tokenizer_path, tmp_path):
    bad = str(tmp_path / 'tokenizer.model')
    with open(bad, 'wb') as f:
        f.write(open(tokenizer_path, 'rb').read()[:100])
    with pytest.raises(CorruptFileError, match=rf'cannot read {bad} as a SentencePiece tokenizer '
                       r'model \(tokenizer.model\)'):
        SentencePieceTokenizer(bad)
    assert SentencePieceTokenizer(tokenizer_path).vocab_size == 512


@pytest.mark.parametrize('encoding,message', [
    ('utf-16', r'is UTF-16/UTF-32 encoded; mma reads JSON as UTF-8'),
    ('latin-1', r'is not UTF-8 \(byte 0xe9 at offset \d+ cannot be decoded\); mma reads JSON as '
                r'UTF-8'),
])
def test_json_in_a_wrong_encoding(tmp_path, encoding, message):
    obj = {'1': {'question': 'Which café is open?'}}
    path = tmp_path / 'problems.json'
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding=encoding)
    with pytest.raises(CorruptFileError, match=rf'{path} \(the problems\) {message}'):
        read_json(str(path), 'the problems')
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding='utf-8-sig')  # BOM accepted
    assert read_json(str(path)) == obj
    path.write_text('{"1": ', encoding='utf-8')
    with pytest.raises(CorruptFileError, match=rf'{path} \(a JSON file\) is not valid JSON: '
                       'Expecting value: line 1 column 7'):
        read_json(str(path))
