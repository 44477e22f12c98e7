"""The COCO-caption fine-tuning config trains with the LaVIN recipe components (token-mean loop,
non-finite skipping, trainable-only atomic checkpoints) on a tiny model and tiny COCO files."""
import json
import os

import torch
from mmengine.config import Config
from mma.engine import MMARunner
from PIL import Image

from mma.engine.mmengine_fixes import apply_mmengine_fixes
from mma.toy import tiny_lavin_cfg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLOURS = {'red': (220, 30, 30), 'green': (30, 170, 40), 'blue': (30, 60, 220)}


def _coco(root):
    images = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        path = os.path.join(root, 'train2014', f'{i}.jpg')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.new('RGB', (40, 40), rgb).save(path)
        images.append(dict(filepath='train2014', filename=f'{i}.jpg', split='train', cocoid=i,
                           sentences=[dict(raw=f'A {name} square.'), dict(raw=f'All {name}.')]))
    with open(os.path.join(root, 'dataset_coco.json'), 'w') as f:
        json.dump(dict(images=images), f)


def test_coco_caption_finetune_config_trains(tmp_path, tokenizer_path):
    apply_mmengine_fixes()
    torch.set_num_threads(1)
    _coco(str(tmp_path / 'coco'))
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_7b_coco_caption_ft.py'))
    assert cfg.train_cfg.type == 'TokenMeanEpochBasedTrainLoop'
    assert cfg.optim_wrapper.type == 'SkipNonFiniteOptimWrapper'
    model = tiny_lavin_cfg(vocab_size=512)
    model.update(tokenizer=dict(type='SentencePieceTokenizer', model_path=tokenizer_path))
    cfg.model = model
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=str(tmp_path / 'coco'),
                                        tokenizer=tokenizer_path, image_size=32)
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.train_cfg.max_epochs = 8
    cfg.param_scheduler = None
    cfg.optim_wrapper.optimizer.lr = 1e-2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer = None
    runner = MMARunner.from_cfg(cfg)  # the configs' runner_type
    runner.train()
    ckpt = torch.load(os.path.join(cfg.work_dir, 'epoch_8.pth'), weights_only=False)
    trainable = {n for n, p in runner.model.named_parameters() if p.requires_grad}
    assert set(ckpt['state_dict']) == trainable  # only the adapters are saved
    losses = [json.loads(line)['loss'] for line in open(
        os.path.join(cfg.work_dir, runner.timestamp, 'vis_data', 'scalars.json'))
        if '"loss"' in line]
    # 24 steps: the adapters learn the six captions (random tiny backbones: ~6.8 -> ~5.7 nats)
    assert len(losses) == 24 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
