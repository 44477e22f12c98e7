"""Plot each LLM layer's router weights for image vs text-only input of a trained model.

    python tools/plot_routing.py CONFIG CHECKPOINT [--out routing.png] [--cfg-options k=v ...]

CHECKPOINT: an adapter checkpoint, or an mmengine training checkpoint (``epoch_N.pth``) of
your own run. The model is built as the Runner builds it (seeded, base weights from the files
named in the config), so a tiny model with random frozen weights gets the weights it trained
with. See docs/visualization.md.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot router weights per layer and modality')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', default='routing.png', help='output image (PNG)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import mma
    from mma.apps.visualization import plot_router_weights, router_weights
    model = mma.load_model(cfg, args.checkpoint)
    weights = router_weights(model)
    plot_router_weights(weights, out=args.out, title=osp.basename(args.checkpoint))
    for name, w in weights.items():
        print(f'{name:28s} image {w[0].tolist()}  text {w[1].tolist()}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
