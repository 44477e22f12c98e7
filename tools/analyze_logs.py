"""Plot training curves (loss, learning rate, ...) of one or more mmengine work dirs.

    python tools/analyze_logs.py WORK_DIR [WORK_DIR ...] [--keys loss lr] [--out curves.png]
                                [--labels NAME ...]

Several work dirs are overlaid (ablations). Runs resumed in the same work dir read as one run.
See docs/visualization.md.
"""
import argparse

from mma.apps.visualization import plot_curves


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot loss / lr curves of mmengine work dirs')
    parser.add_argument('work_dirs', nargs='+', help='work dirs (or vis_data/scalars.json files)')
    parser.add_argument('--keys', nargs='+', default=['loss', 'lr'], help='logged scalars')
    parser.add_argument('--labels', nargs='+', help='legend entries, one per work dir')
    parser.add_argument('--out', default='curves.png', help='output image (PNG)')
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.work_dirs):
        parser.error('--labels needs one entry per work dir')
    return args


def main(argv=None):
    args = parse_args(argv)
    plot_curves(args.work_dirs, args.keys, out=args.out, labels=args.labels)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
