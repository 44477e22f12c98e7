"""Plot each LLM layer's router weights for image vs text-only input of a trained model.

    python tools/plot_routing.py CONFIG CHECKPOINT [--out routing.png] [--cfg-options k=v ...]

CHECKPOINT: an adapter checkpoint, or an mmengine training checkpoint (``epoch_N.pth``) of
your own run. The model is built as the Runner builds it (seeded, base weights from the files
named in the config), so a tiny model with random frozen weights gets the weights it trained
with. See docs/visualization.md.
"""
import argparse
import os.path as osp
import pickle
import warnings

import torch
from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot router weights per layer and modality')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', default='routing.png', help='output image (PNG)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields')
    return parser.parse_args(argv)


def read_state(path: str) -> dict:
    from mma.engine import read_adapter_state
    try:
        return read_adapter_state(path)
    except pickle.UnpicklingError:
        # mmengine training checkpoints pickle logger state, which weights_only=True refuses
        warnings.warn(f'{path} is a full training checkpoint: loading it with '
                      'weights_only=False (only do this with files you trust)')
        obj = torch.load(path, map_location='cpu', weights_only=False)
        return {k.removeprefix('module.'): v for k, v in obj['state_dict'].items()}


def build_trained_model(cfg: Config, checkpoint: str):
    """The model as the Runner builds it (seeded from ``cfg.randomness`` first, so a tiny model's
    random frozen weights are those it was trained with), with the checkpoint's adapters."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import set_random_seed

    from mma.engine import check_trainable_state_dict, trainable_keys
    init_default_scope(cfg.get('default_scope', 'mma'))
    randomness = cfg.get('randomness', {})
    set_random_seed(seed=randomness.get('seed'),
                    deterministic=randomness.get('deterministic', False),
                    diff_rank_seed=randomness.get('diff_rank_seed', False))
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = read_state(checkpoint)
    check_trainable_state_dict(state, trainable_keys(model))
    model.load_state_dict(state, strict=False)
    return model


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import mma  # noqa: F401  (registers mma's components)
    from mma.visualization import plot_router_weights, router_weights
    model = build_trained_model(cfg, args.checkpoint)
    weights = router_weights(model)
    plot_router_weights(weights, out=args.out, title=osp.basename(args.checkpoint))
    for name, w in weights.items():
        print(f'{name:28s} image {w[0].tolist()}  text {w[1].tolist()}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
