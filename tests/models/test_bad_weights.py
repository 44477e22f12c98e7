"""Weights that do not fit the config get a clear error before training (issue 8 item 1).

Also covered elsewhere: tests/llms/test_llama_checkpoints.py (tokenizer/vocab mismatch of a LLaMA
folder, shape mismatch, missing weight, no shards) and tests/models/test_lavin_checkpoint.py
(unknown, missing and mis-shaped adapter tensors)."""
import os

import pytest
import torch
from mmengine.config import Config
from mma.engine import MMARunner

import mma
from mma.llms import save_meta_checkpoint
from mma.llms.checkpoints import meta_params
from mma.toy import tiny_lavin_cfg


def test_model_tokenizer_vocab_checked_by_init_weights(tokenizer_path):
    cfg = tiny_lavin_cfg(vocab_size=640)  # the fixture tokenizer has 512 pieces
    cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    model = mma.build_model(cfg)
    with pytest.raises(ValueError, match=rf'tokenizer {tokenizer_path} has 512 pieces but '
                       r'model.llm \(the LLM weights\) has vocab_size 640'):
        model.init_weights()


def test_pipeline_tokenizer_vocab_checked_before_training(tokenizer_path, sqa_root, tmp_path):
    """Through the Runner: VocabCheckHook (default_runtime) stops before the first step."""
    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'tiny',
                                       'lavin_tiny_sqa.py'))
    tok = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    cfg.merge_from_dict({'model.llm.vocab_size': 640, 'model.tokenizer': None,
                         'train_dataloader.dataset.data_root': str(sqa_root),
                         'train_dataloader.dataset.split': 'test',
                         'train_dataloader.dataset.pipeline.1.tokenizer': tok,
                         'work_dir': str(tmp_path), 'test_dataloader': None,
                         'test_evaluator': None, 'test_cfg': None})
    runner = MMARunner.from_cfg(cfg)  # the configs' runner_type
    with pytest.raises(ValueError, match=rf'tokenizer {tokenizer_path} has 512 pieces but the LLM '
                       r'\(model.llm; tokenizer of train_dataloader.dataset ScienceQADataset\) has '
                       r'vocab_size '
                       '640'):
        runner.train()
    assert runner.iter == 0


def test_missing_or_mismatched_llama_shard(tmp_path):
    torch.manual_seed(0)
    ref = mma.llms.LLaMA(preset='tiny-gqa', vocab_size=512)
    folder = str(tmp_path / '13B')
    save_meta_checkpoint(ref.state_dict(), folder, meta_params(ref.args), 4)
    os.rename(os.path.join(folder, 'consolidated.03.pth'), str(tmp_path / 'away.pth'))
    model = mma.llms.LLaMA(preset='tiny-gqa', vocab_size=512, checkpoint=folder)
    # the last of 4 shards lost: the concatenated tensors are too small
    with pytest.raises(ValueError, match=r'13B: shape mismatch for tok_embeddings.weight: '
                       r'checkpoint \(512, 48\) vs model \(512, 64\) \(3 consolidated.NN.pth '
                       r'shards found: a shard missing'):
        model.load_pretrained()
    # a middle shard lost: named
    os.rename(str(tmp_path / 'away.pth'), os.path.join(folder, 'consolidated.03.pth'))
    os.remove(os.path.join(folder, 'consolidated.01.pth'))
    with pytest.raises(FileNotFoundError, match=r'13B: shard consolidated.01.pth is missing'):
        model.load_pretrained()
    # the weights of another size
    small = mma.llms.LLaMA(preset='tiny', vocab_size=512, dim=32)
    other = str(tmp_path / 'other')
    save_meta_checkpoint(small.state_dict(), other, meta_params(small.args), 1)
    with pytest.raises(ValueError, match=r"preset 'tiny' field dim=64 but \S+other.params.json "
                       r'says dim=32'):  # sizes come from the folder: caught at construction
        mma.llms.LLaMA(preset='tiny', vocab_size=512, checkpoint=other)
    model = mma.llms.LLaMA(preset='tiny', vocab_size=512)  # built without it: caught at loading
    with pytest.raises(ValueError, match=r'other: shape mismatch for \S+: checkpoint \(.*\) vs '
                       r'model \(.*\)'):
        model.load_pretrained(other)


def test_adapter_checkpoint_from_another_config(tmp_path):
    torch.manual_seed(0)
    other = mma.build_model(tiny_lavin_cfg(vocab_size=512, placement='ffn'))
    path = str(tmp_path / 'ffn_adapters.pth')
    torch.save(other.trainable_state_dict(), path)
    cfg = tiny_lavin_cfg(vocab_size=512, placement='attn')
    cfg['adapter_checkpoint'] = path
    model = mma.build_model(cfg)
    with pytest.raises(KeyError, match=rf'{path} does not match the model: \d+ unexpected keys '
                       r".*\['llm.layers.0.adapter_ffn.*\d+ missing adapter tensors of the model: "
                       r"\['llm.layers.0.adapter_attn"):
        model.init_weights()
