import json
import os

import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset
from PIL import Image

from mma.datasets import (AlpacaDataset, LaVINInstructDataset, LengthGroupedSampler,
                          LLaVAInstructDataset, LoadLaVINImage, ScienceQADataset,
                          TokenizeForLaVIN, build_prompt, mma_collate, to_rgb)
from mma.llms.tokenizer import SentencePieceTokenizer
from mma.toy import make_tiny_instruction_data, make_tiny_scienceqa


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('sqa')), n=12)


@pytest.fixture(scope='module')
def tok(sqa):
    return SentencePieceTokenizer(sqa['tokenizer'])


def pipeline(tok, **kw):
    return [dict(type='LoadLaVINImage', size=32),
            dict(type='TokenizeForLaVIN', tokenizer=tok, num_visual_tokens=2, **kw)]


def test_scienceqa_samples_and_token_layout(sqa, tok):
    ds = ScienceQADataset(sqa['data_root'], split='val', pipeline=pipeline(tok))
    problems = json.load(open(os.path.join(sqa['data_root'], 'problems.json')))
    split = json.load(open(os.path.join(sqa['data_root'], 'pid_splits.json')))['val']
    assert len(ds) == len(split) == 12
    n_img = 0
    for i, qid in enumerate(split):
        info = ds.get_data_info(i)
        p = problems[qid]
        assert (info['prompt'], info['answer']) == build_prompt(p, 'QCM-ALE')
        out = ds[i]
        x, meta = out['inputs'], out['data_samples']
        prefix = tok.encode('Image: ' if p['image'] else 'Image: N/A')
        head = [tok.bos_id] + prefix + tok.encode(info['prompt'])
        ans = tok.encode(info['answer']) + [tok.eos_id]
        assert x['input_ids'].tolist() == head + ans
        assert x['labels'].tolist() == [-100] * len(head) + ans
        assert x['has_image'] == bool(p['image']) == meta['has_image']
        assert meta['qid'] == qid and meta['answer_idx'] == p['answer']
        if p['image']:
            n_img += 1
            assert x['visual_pos'] == 1 + len(tok.encode('Image: '))
            assert info['img_path'].endswith(f'images/val/{qid}/image.png')
            assert x['image'].shape == (3, 32, 32)
        else:
            assert x['image'] is None and info['img_path'] is None
    assert 0 < n_img < 12


def test_captions_and_prediction_mode(sqa, tok):
    ds = ScienceQADataset(sqa['data_root'], split='test', use_caption=True,
                          pipeline=pipeline(tok, with_answer=False))
    caps = json.load(open(os.path.join(sqa['data_root'], 'captions.json')))['captions']
    info = ds.get_data_info(0)
    assert caps[info['qid']] in info['prompt']
    x = ds[0]['inputs']
    assert x['labels'] is None
    assert x['input_ids'][-len(tok.encode(info['prompt'])):].tolist() == tok.encode(info['prompt'])


def test_overlong_policies_count_and_never_cut_answers(sqa, tok):
    base = ScienceQADataset(sqa['data_root'], split='train', pipeline=pipeline(tok))
    lens = sorted(base.lengths)
    max_len = lens[len(lens) // 2]  # about half the samples are over-long
    n_over = sum(n > max_len for n in lens)
    skip = ScienceQADataset(sqa['data_root'], split='train',
                            pipeline=pipeline(tok, max_len=max_len, overlong='skip'))
    assert (len(skip), skip.num_skipped, skip.num_truncated) == (12 - n_over, n_over, 0)
    trunc = ScienceQADataset(sqa['data_root'], split='train',
                             pipeline=pipeline(tok, max_len=max_len))
    assert trunc.num_truncated + trunc.num_skipped == n_over and trunc.num_truncated > 0
    for i in range(len(trunc)):
        info, x = trunc.get_data_info(i), trunc[i]['inputs']
        ans = tok.encode(info['answer']) + [tok.eos_id]
        assert x['labels'][-len(ans):].tolist() == ans  # every answer token and EOS kept
        assert (x['labels'] != -100).sum() == len(ans)
        assert 1 + len(x['input_ids']) + 2 * x['has_image'] <= max_len
        assert max(trunc.lengths) <= max_len


def test_overlong_warns_once_with_count(sqa, tok, monkeypatch):
    import mma.datasets.base as base
    calls = []
    monkeypatch.setattr(base, 'print_log', lambda msg, **kw: calls.append((msg, kw)))
    lens = sorted(ScienceQADataset(sqa['data_root'], split='train', pipeline=pipeline(tok)).lengths)
    assert calls == []
    max_len = lens[len(lens) // 2]
    ds = ScienceQADataset(sqa['data_root'], split='train',
                          pipeline=pipeline(tok, max_len=max_len, overlong='skip'))
    assert len(calls) == 1 and calls[0][1]['level'] == 30  # one WARNING
    assert f'{ds.num_skipped} skipped' in calls[0][0] and ds.num_skipped > 0


def test_instruction_datasets_and_concat(tmp_path, tok):
    paths = make_tiny_instruction_data(str(tmp_path))
    alpaca = AlpacaDataset(paths['alpaca'], pipeline=pipeline(tok))
    assert [alpaca.get_data_info(i)['prompt'] for i in range(2)] == [
        'Instruction: Name a color.\nResponse:', 'Instruction: Add the numbers.\n2 and 3\nResponse:']
    assert alpaca.get_data_info(1)['answer'] == '5.' and not alpaca[0]['inputs']['has_image']
    llava = LLaVAInstructDataset(paths['llava'], image_root=paths['coco'], pipeline=pipeline(tok))
    assert len(llava) == 2  # one sample per human/gpt turn pair
    assert [llava.get_data_info(i)['prompt'] for i in range(2)] == [
        'Instruction: What is in the picture?\nResponse:',
        'Instruction: What color is it?\nResponse:']
    assert llava.get_data_info(1)['answer'] == 'It is red.'
    assert llava[1]['inputs']['has_image']
    assert llava.get_data_info(0)['img_path'].endswith('train2014/COCO_train2014_000000000009.jpg')
    lavin = LaVINInstructDataset(paths['lavin'], sqa_image_root=paths['sqa_images'],
                                 coco_image_root=paths['coco'], pipeline=pipeline(tok))
    assert lavin.get_data_info(1)['img_path'].endswith('sqa_images/train/5/image.png')
    assert lavin.get_data_info(0)['prompt'] == 'Instruction: Describe the image.\nResponse:'
    assert [lavin[i]['inputs']['has_image'] for i in range(3)] == [True, True, False]
    mixed = ConcatDataset([alpaca, llava, lavin])
    assert len(mixed) == 7
    batch = mma_collate([mixed[i] for i in range(7)])
    assert batch['inputs']['has_image'].tolist() == [False, False, True, True, True, True, False]
    assert batch['inputs']['images'].shape == (4, 3, 32, 32)


def test_collate_pads_to_longest_only(sqa, tok):
    ds = ScienceQADataset(sqa['data_root'], split='train', pipeline=pipeline(tok))
    items = [ds[i] for i in range(5)]
    b = mma_collate(items)['inputs']
    lens = [len(it['inputs']['input_ids']) for it in items]
    assert b['input_ids'].shape == (5, max(lens)) and max(lens) < 512
    assert b['lengths'].tolist() == lens
    for i, it in enumerate(items):
        n = lens[i]
        assert torch.equal(b['input_ids'][i, :n], it['inputs']['input_ids'])
        assert (b['input_ids'][i, n:] == 0).all() and (b['labels'][i, n:] == -100).all()
        assert torch.equal(b['labels'][i, :n], it['inputs']['labels'])
    imgs = [it['inputs']['image'] for it in items if it['inputs']['has_image']]
    assert torch.equal(b['images'], torch.stack(imgs))


def test_image_modes_and_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray16 = (rng.integers(0, 256, (8, 8)).astype(np.uint16) * 257)
    Image.fromarray(gray16).save(tmp_path / 'g16.png')
    with Image.open(tmp_path / 'g16.png') as im:
        assert im.mode.startswith('I')
        assert np.array_equal(np.asarray(to_rgb(im))[..., 0], (gray16 // 257).astype(np.uint8))
    pal = Image.fromarray(rgb).convert('P')
    assert np.array_equal(np.asarray(to_rgb(pal)), np.asarray(pal.convert('RGB')))
    rgba = np.dstack([rgb, np.zeros((8, 8), np.uint8)])
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(rgba, 'RGBA'))), rgb)
    white = np.asarray(to_rgb(Image.fromarray(rgba, 'RGBA'), background=(255, 255, 255)))
    assert (white == 255).all()
    Image.fromarray(rgb).convert('L').save(tmp_path / 'l.png')
    x = LoadLaVINImage(size=16).load(str(tmp_path / 'l.png'))
    ref = Image.open(tmp_path / 'l.png').convert('RGB').resize((16, 16), Image.BICUBIC)
    ref = torch.tensor(np.asarray(ref), dtype=torch.float32).permute(2, 0, 1) / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(x, (ref - mean) / std, atol=1e-6)
    # an image already in memory (lmms-eval's documents) becomes what the file gives
    load = LoadLaVINImage(size=16, background=(255, 255, 255))
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    with Image.open(tmp_path / 'a.png') as im:
        assert torch.equal(load.from_image(im), load.load(str(tmp_path / 'a.png')))
    assert torch.equal(load.from_image(Image.open(tmp_path / 'l.png')),
                       load.load(str(tmp_path / 'l.png')))


def test_length_grouped_sampler(sqa, tok, monkeypatch):
    ds = ScienceQADataset(sqa['data_root'], split='trainval', pipeline=pipeline(tok))
    lens = ds.lengths
    s = LengthGroupedSampler(ds, batch_size=2, mega_batch_mult=100, seed=3)
    order = list(s)
    assert sorted(order) == list(range(24)) and order == list(LengthGroupedSampler(
        ds, batch_size=2, mega_batch_mult=100, seed=3))
    s.set_epoch(1)
    assert list(s) != order
    # one mega-batch holds all samples: batches are consecutive in length order
    batches = [sorted(lens[i] for i in order[k:k + 2]) for k in range(0, 24, 2)]
    spans = sorted(b for bb in batches for b in bb)
    assert sum(b[1] - b[0] for b in batches) <= sum(spans[k + 1] - spans[k] for k in range(23))
    # two ranks partition the same global order
    import mma.datasets.samplers as smod
    parts = []
    for rank in range(2):
        monkeypatch.setattr(smod, 'get_dist_info', lambda r=rank: (r, 2))
        parts.append(list(LengthGroupedSampler(ds, batch_size=2, seed=3)))
    assert len(parts[0]) == len(parts[1]) == 12 and sorted(parts[0] + parts[1]) == list(range(24))
