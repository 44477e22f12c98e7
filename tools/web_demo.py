#!/usr/bin/env python
"""A browser demo: image + question, the answer streamed, the router's weights per LLM layer.

    pip install -e '.[web]'
    python tools/demo.py && python tools/web_demo.py          # the trained CPU demo model
    python tools/web_demo.py CONFIG [CHECKPOINT] [--merge image|text] [--port 7860]

Serves on http://127.0.0.1:PORT (``--host 0.0.0.0`` for other machines), offline: no share link,
no analytics. A model that cannot be loaded is reported in the page and here. See
docs/evaluation.md.
"""
import argparse
import importlib.util
import os

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Web demo of a LaVIN model (gradio)')
    p.add_argument('config', nargs='?', help='model config (default: the tools/demo.py model)')
    p.add_argument('checkpoint', nargs='?', help='adapter weights or a merged model')
    p.add_argument('--merge', choices=['image', 'text'],
                   help='fold the adapters for one modality (faster; that modality only)')
    p.add_argument('--demo-dir', default='work_dirs/lavin_tiny_demo',
                   help='where tools/demo.py wrote its run (used without CONFIG)')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec('gradio') is None:
        raise SystemExit("tools/web_demo.py needs gradio: pip install -e '.[web]'")
    from mma.apps.web_demo import DemoError, load_web_demo
    from mma.apps.web_demo.ui import build_app, launch
    demo, error = None, None
    try:
        demo = load_web_demo(args.config, args.checkpoint, args.merge, args.cfg_options,
                             args.demo_dir)
    except DemoError as err:
        error = str(err)
        print(f'web_demo: {error}\nweb_demo: serving the page with this message')
    print(f'web_demo: http://{args.host}:{args.port}', flush=True)
    launch(build_app(demo, error), args.port, args.host)


if __name__ == '__main__':
    main()
