"""Bad data gets a clear error naming the file, qid or field (issue 8 item 1); odd image modes are
converted, not failed. The over-long policy (counted, never silent) is tested in
test_data_pipeline.py::test_overlong_policies_count_and_never_cut_answers and
::test_overlong_warns_once_with_count."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mma.datasets import (AlpacaDataset, DataValidationError, LoadLaVINImage, ScienceQADataset,
                          TokenizeForLaVIN, validate_dataset)
from mma.llms.tokenizer import SentencePieceTokenizer
from mma.toy import make_tiny_scienceqa


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('bad') / 'sqa'), n=4)


@pytest.fixture(scope='module')
def tok(sqa):
    return SentencePieceTokenizer(sqa['tokenizer'])


@pytest.fixture
def copy(sqa, tmp_path):
    """A writable copy of the fixture data set."""
    root = str(tmp_path / 'sqa')
    shutil.copytree(sqa['data_root'], root)
    return root


def pipeline(tok):
    return [dict(type='LoadLaVINImage', size=16),
            dict(type='TokenizeForLaVIN', tokenizer=tok, num_visual_tokens=2)]


def build(root, tok, split='train', **kw):
    return ScienceQADataset(root, split=split, pipeline=pipeline(tok), **kw)


def edit_problems(root, fn):
    path = os.path.join(root, 'problems.json')
    problems = json.load(open(path))
    fn(problems)
    json.dump(problems, open(path, 'w'))


def image_qid(root, split='train'):
    problems = json.load(open(os.path.join(root, 'problems.json')))
    qids = json.load(open(os.path.join(root, 'pid_splits.json')))[split]
    return next(q for q in qids if problems[q].get('image'))


def test_missing_data_root_and_problems_json(tmp_path, copy, tok):
    with pytest.raises(FileNotFoundError, match=r"data_root '.*nowhere' does not exist.*"
                       r"problems.json, pid_splits.json"):
        build(str(tmp_path / 'nowhere'), tok)
    os.remove(os.path.join(copy, 'problems.json'))
    with pytest.raises(FileNotFoundError,
                       match=r'problems file not found: .*sqa/problems.json'):
        build(copy, tok)


def test_qid_of_split_absent_from_problems(copy, tok):
    edit_problems(copy, lambda p: p.pop('2'))  # qid 2 is in the train split
    with pytest.raises(KeyError, match=r"1 qids of split 'train' in .*pid_splits.json are not in "
                       r".*problems.json: \['2'\]"):
        build(copy, tok)


def test_missing_image_named_at_check_and_at_load(copy, tok):
    qid = image_qid(copy)
    path = os.path.join(copy, 'images', 'train', qid, 'image.png')
    os.remove(path)
    ds = build(copy, tok)
    with pytest.raises(DataValidationError, match=rf'(?s)1 images cannot be used.*image not found: '
                       rf'{path} \(sample {qid}\)'):
        validate_dataset(ds, 'train_dataloader.dataset')
    idx = [ds.get_data_info(i)['qid'] for i in range(len(ds))].index(qid)
    with pytest.raises(FileNotFoundError, match=rf'image not found: {path} \(sample {qid}\)'):
        ds[idx]


@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_corrupt_or_truncated_image(copy, tok, damage):
    qid = image_qid(copy)
    path = os.path.join(copy, 'images', 'train', qid, 'image.png')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2] if damage == 'truncated' else b'not a png' * 9)
    ds = build(copy, tok)
    with pytest.raises(DataValidationError,
                       match=rf'(?s)cannot read image {path} \(sample {qid}\): corrupt or truncated'):
        validate_dataset(ds)
    with pytest.raises(ValueError, match=rf'cannot read image {path} \(sample {qid}\)'):
        LoadLaVINImage(size=16)(dict(img_path=path, qid=qid))


def test_image_modes_from_files_are_converted(tmp_path):
    """Grayscale, palette, RGBA and 16-bit files load as the RGB pixels they show."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    files = {
        'L': (Image.fromarray(gray, 'L'), np.repeat(gray[..., None], 3, -1)),
        'P': (Image.fromarray(rgb).quantize(16), None),
        'RGBA': (Image.fromarray(np.dstack([rgb, np.full((8, 8), 7, np.uint8)]), 'RGBA'), rgb),
        'I;16': (Image.fromarray(gray.astype(np.uint16) * 257), np.repeat(gray[..., None], 3, -1)),
    }
    load = LoadLaVINImage(size=8, mean=(0, 0, 0), std=(1, 1, 1))  # identity resize & scale
    for mode, (img, want) in files.items():
        path = str(tmp_path / f'{mode.replace(";", "")}.png')
        img.save(path)
        with Image.open(path) as check:
            assert check.mode.startswith(mode[0]), (mode, check.mode)
        if mode == 'P':  # the palette colours of each pixel
            want = np.asarray(img.convert('RGB'))
        got = (load.load(path) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert got.shape == (8, 8, 3) and np.array_equal(got, want), mode


def test_empty_question_or_answer(copy, tok, tmp_path):
    edit_problems(copy, lambda p: p['1'].update(question='  '))
    with pytest.raises(ValueError, match=r'problems.json: problem 1 has an empty question'):
        build(copy, tok)
    edit_problems(copy, lambda p: p['1'].update(question='Which?', answer=7))
    with pytest.raises(ValueError, match=r'problem 1: answer 7 is not the index of one of its'):
        build(copy, tok)
    alpaca = tmp_path / 'alpaca.json'
    alpaca.write_text(json.dumps([dict(instruction='Say hi.', input='', output=''),
                                  dict(instruction='', input='', output='x')]))
    with pytest.raises(ValueError, match=r'alpaca.json: sample alpaca_0 has an empty answer'):
        AlpacaDataset(ann_file=str(alpaca), pipeline=pipeline(tok))
    t = TokenizeForLaVIN(tok)
    with pytest.raises(ValueError, match='sample q9: empty answer None'):
        t(dict(qid='q9', prompt='Question: x\nResponse:', answer=None, img_path=None))
    with pytest.raises(ValueError, match='sample q9: empty prompt'):
        t(dict(qid='q9', prompt='', answer='A', img_path=None))


def test_unknown_prompt_format(copy, tok):
    with pytest.raises(ValueError, match=r"prompt_format=...\): prompt format 'QCM-XYZ': output "
                       r"part must be one of \('A', 'AL'"):
        build(copy, tok, prompt_format='QCM-XYZ')
    with pytest.raises(ValueError, match=r"prompt format 'QZM-A': input part must use each of "
                       r'the letters QCMLE'):
        build(copy, tok, prompt_format='QZM-A')


@pytest.mark.parametrize('field,value,message', [
    ('choices', 'abc', r'field "choices" must be a list of strings, got str \'abc\''),
    ('choices', ['red', 3], r'an empty or non-string choice in field "choices": \[\'red\', 3\]'),
    ('answer', True, r'answer True is not the index of one of its \d choices \(field "answer" '
                     r'must be an int in 0..\d, got bool\)'),
    ('answer', 1.0, r'answer 1.0 is not the index .*got float'),
])
def test_choices_and_answer_types(copy, tok, field, value, message):
    """A string of choices would train on its characters as options, ``answer: true`` as 1."""
    edit_problems(copy, lambda p: p['1'].update({field: value}))
    with pytest.raises(ValueError, match=r'problems.json: problem 1:? .*' + message):
        build(copy, tok)


def test_qid_listed_twice_is_refused(copy, tok):
    path = os.path.join(copy, 'pid_splits.json')
    splits = json.load(open(path))
    splits['train'] += splits['train'][2:4]
    json.dump(splits, open(path, 'w'))
    with pytest.raises(ValueError, match=rf"split 'train' of {path} lists 2 qids more than once "
                       rf".*: \['{splits['train'][2]}', '{splits['train'][3]}'\]; remove the "
                       'repeats'):
        build(copy, tok)
    build(copy, tok, split='val')  # the other splits are fine


def test_empty_split_is_named(copy, tok):
    path = os.path.join(copy, 'pid_splits.json')
    splits = json.load(open(path))
    splits['train'] = []
    json.dump(splits, open(path, 'w'))
    with pytest.raises(ValueError, match=rf"split 'train' of {path} lists no qids: nothing to "
                       'train or evaluate on'):
        build(copy, tok)


@pytest.mark.parametrize('encoding', ['utf-16', 'latin-1'])
def test_problems_json_in_a_wrong_encoding(copy, tok, encoding):
    path = os.path.join(copy, 'problems.json')
    problems = json.load(open(path, encoding='utf-8'))
    problems['1']['question'] = 'Which café is closest?'
    with open(path, 'w', encoding=encoding) as f:
        json.dump(problems, f, ensure_ascii=False)
    with pytest.raises(ValueError, match=rf'{path} \(the ScienceQA problems file\) is '
                       r'(not UTF-8 .*\)|UTF-16/UTF-32 encoded); mma reads JSON as UTF-8: '
                       'convert it'):
        build(copy, tok)
    with open(path, 'w', encoding='utf-8') as f:  # the same text as UTF-8 reads back exactly
        json.dump(problems, f, ensure_ascii=False)
    ds = build(copy, tok)
    assert any('Which café is closest?' in ds.get_data_info(i)['prompt'] for i in range(len(ds)))


def test_overlong_skips_name_the_qids(sqa, tok, monkeypatch):
    import mma.datasets.base as base
    calls = []
    monkeypatch.setattr(base, 'print_log', lambda msg, **kw: calls.append(msg))
    full = build(sqa['data_root'], tok)
    lens = {full.get_data_info(i)['qid']: n for i, n in enumerate(full.lengths)}
    max_len = sorted(lens.values())[len(lens) // 2]
    over = [q for q, n in lens.items() if n > max_len]
    ds = ScienceQADataset(sqa['data_root'], split='train', pipeline=[
        pipeline(tok)[0], dict(pipeline(tok)[1], max_len=max_len, overlong='skip')])
    assert ds.skipped_qids == over and ds.num_skipped == len(over) > 0
    assert f'{len(over)} skipped {over[:10]}' in calls[-1]
    assert 'WORK_DIR/overlong_samples.txt' in calls[-1]
    with pytest.raises(ValueError, match=r'all \d+ samples exceed max_len=5 and were skipped'):
        ScienceQADataset(sqa['data_root'], split='train', pipeline=[
            pipeline(tok)[0], dict(pipeline(tok)[1], max_len=5, overlong='skip')])


def _report(err) -> str:
    """The text of the full list a bad-records error points to."""
    import re
    path = re.search(r'the full list is in (\S+)\)', str(err)).group(1)
    return open(path).read()


def test_every_bad_record_of_a_problems_file_in_one_run(copy, tok):
    """Three different bad records: one run names all three (message and full list)."""
    qids = json.load(open(os.path.join(copy, 'pid_splits.json')))['train']
    assert len(qids) >= 3
    a, b, c = qids[:3]

    def damage(p):
        p[a]['question'] = ' '
        p[b]['answer'] = 1.0
        del p[c]['choices']
    edit_problems(copy, damage)
    with pytest.raises(DataValidationError) as err:
        build(copy, tok)
    msg = str(err.value)
    assert f'problems.json: 3 of {len(qids)} records are bad' in msg
    wants = [f'problem {a} has an empty question', f'problem {b}: answer 1.0 is not the index',
             f'problem {c}: field "choices" must be a list of strings, got NoneType']
    for want in wants:
        assert want in msg and want in _report(err.value)


def test_many_bad_records_first_ones_in_the_message_all_in_the_file(tmp_path, tok):
    alpaca = tmp_path / 'alpaca.json'
    items = [dict(instruction='Say hi.', input='', output='hi')] + \
        [dict(instruction=f'Q{i}?', input='', output='') for i in range(12)] + [dict(input='x')]
    alpaca.write_text(json.dumps(items))
    with pytest.raises(DataValidationError) as err:
        AlpacaDataset(ann_file=str(alpaca), pipeline=pipeline(tok))
    msg, report = str(err.value), _report(err.value)
    assert 'alpaca.json: 13 of 14 records are bad' in msg and '... and 3 more' in msg
    assert msg.count('has an empty answer') == 10
    assert report.count('has an empty answer') == 12
    # a missing field is named with its record, not a bare KeyError
    assert "alpaca.json: sample alpaca_13: missing field 'instruction'" in report
