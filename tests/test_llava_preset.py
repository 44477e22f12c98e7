"""The LLaVA-1.5 preset starts from LLaVA-1.5: one folder for LLM, tower and projector, and
LLaVA-1.5's input (docs/weights.md, "Starting from LLaVA-1.5")."""
import os

from mmengine.config import Config


def test_llava_preset_config_is_llava_input():
    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), '..', 'configs',
                                       'mma_llava1.5-7b_sqa.py'))
    assert cfg.model.modality_in_sequence is False
    folder = cfg.model.llm.checkpoint
    assert cfg.model.vision.pretrained == cfg.model.projector.weights == folder
    for key in ('train_dataloader', 'test_dataloader'):
        load, tokenize = cfg[key].dataset.pipeline
        assert load.pad_to_square and tokenize.template == 'llava_v1'
        assert tokenize.image_prefix is None and tokenize.text_prefix is None
