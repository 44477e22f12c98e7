#!/usr/bin/env python
"""The embedded CPU demo: MMA on synthetic ScienceQA-format data, end to end.

    python tools/demo.py [--work-dir work_dirs/lavin_tiny_demo] [--no-text-only] [--quick]

1. writes a synthetic data set in ScienceQA's layout (image questions answerable only from the
   picture, text questions only from the text), trains a tokenizer, pretrains a tiny ViT and a
   tiny LLaMA (cached in WORK_DIR/assets: a second run skips this);
2. trains LaVIN's adapters on the frozen backbones with the mmengine Runner;
3. evaluates on held-out questions with the ScienceQA metric and prints the table;
4. does the same for a text-only preset (no visual tokens), to compare on image questions.
"""
import argparse
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def main(argv=None):
    from mmengine.config import DictAction

    from mma.apps.demo.run import DEFAULT_CONFIG, run_demo
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default='work_dirs/lavin_tiny_demo')
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--no-text-only', action='store_true',
                   help='skip the text-only comparison run')
    p.add_argument('--quick', action='store_true', help='smaller data and pretraining (tests)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config fields, e.g. train_cfg.max_epochs=2')
    args = p.parse_args(argv)
    return run_demo(args.work_dir, args.config, 'quick' if args.quick else 'full',
                    not args.no_text_only, args.cfg_options)


if __name__ == '__main__':
    main()
