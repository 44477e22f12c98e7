"""Data that follows the model: declared FROM_MODEL fields are filled from the model once, in any
dataset config (wrappers, pipelines, a dataset's own arguments), and a hand-set count that
differs is an error naming the key; the one layout module counts positions as the model does."""
import pytest
import torch
from mmengine.config import Config

import mma
from mma.datasets import (IMAGENET_MEAN, LoadLaVINImage, TokenizeForLaVIN, follow_model,
                          model_data_facts, prediction_pipeline)
from mma.engine import sync_data_with_model
from mma.errors import MMAUserError
from mma.sequence import num_positions, pack, pad_rows
from mma.toy import tiny_lavin_cfg


@pytest.fixture(scope='module')
def model(tokenizer_path):
    cfg = tiny_lavin_cfg(vocab_size=512)
    cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    torch.manual_seed(0)
    return mma.build_model(cfg).eval()


def test_follow_model_fills_unset_keeps_choices_and_refuses_mismatches(model):
    facts = model_data_facts(model)
    assert facts['num_visual_tokens'] == model.num_visual_tokens == 2
    assert facts['image_size'] == (32, 32)
    cfg = dict(type='LoadLaVINImage')
    follow_model(LoadLaVINImage, cfg, facts, 'p.0')
    assert cfg == dict(type='LoadLaVINImage', size=[32, 32])  # mean/std keep LaVIN's ImageNet
    cfg = dict(type='LoadLaVINImage', size=32, mean=None)  # equal by hand; None: the tower's
    follow_model(LoadLaVINImage, cfg, facts, 'p.0')
    assert cfg['size'] == 32 and tuple(cfg['mean']) == tuple(model.vision.image_mean)
    assert tuple(cfg['mean']) != IMAGENET_MEAN
    with pytest.raises(MMAUserError, match=r'p\.1\.num_visual_tokens=6 but the model inserts 2 '
                       r'visual tokens per image'):
        follow_model(TokenizeForLaVIN, dict(num_visual_tokens=6), facts, 'p.1')


def test_sync_reaches_every_dataset_config_once(model, tokenizer_path):
    cfg = Config(dict(model=dict(tokenizer=dict(type='SentencePieceTokenizer',
                                                 model_path=tokenizer_path)),
                      test_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
                          dict(type='MMEDataset', data_root='x'),
                          dict(type='ScienceQADataset', data_root='y', pipeline=[
                              dict(type='LoadLaVINImage'), dict(type='TokenizeForLaVIN')])]))))
    assert sync_data_with_model(cfg, model) == 2
    mme, sqa = cfg.test_dataloader.dataset.datasets
    assert (mme.num_visual_tokens, tuple(mme.image_size)) == (2, (32, 32))
    assert mme.tokenizer == cfg.model.tokenizer == sqa.pipeline[1].tokenizer
    assert sqa.pipeline[1].num_visual_tokens == 2 and tuple(sqa.pipeline[0].size) == (32, 32)
    before = cfg.to_dict()
    sync_data_with_model(cfg, model)  # a second sync changes nothing
    assert cfg.to_dict() == before


def test_positions_of_a_packed_question_are_the_models(model):
    """The layout module's count equals the length of the sequence LaVIN assembles, and a
    prediction pipeline's rows batch to what the model takes."""
    pipeline = prediction_pipeline(model)
    tok = pipeline[-1]
    rows = [pack([1], [5, 6], [7, 8, 9], [], has_image) for has_image in (True, False)]
    batch = pad_rows(rows)
    images = torch.zeros(1, 3, 32, 32)
    seq = model.assemble(batch['input_ids'], batch['has_image'], batch['visual_pos'], images)
    assert seq['embeds'].shape[1] == int(num_positions(batch['lengths'], batch['has_image'],
                                                       model.num_visual_tokens).max())
    assert model.prompt_lengths(dict(batch, images=images)).tolist() == [1 + 6 + 2, 1 + 6]
    assert tok.num_visual_tokens == 2 and not tok.with_answer
    positions, drop, _ = tok.measure(dict(prompt='what is this', img_path='x.png'))
    ids = tok(dict(prompt='what is this', img_path='x.png', image=images[0]))['inputs']
    assert positions == num_positions(len(ids['input_ids']), True, 2) and drop == 0
