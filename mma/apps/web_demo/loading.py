"""Load the model a web demo serves; every failure becomes a :class:`DemoError` message."""
from typing import Optional

from .session import DemoError, WebDemo


def load_web_demo(config: Optional[str] = None, checkpoint: Optional[str] = None,
                  merge: Optional[str] = None, cfg_options: Optional[dict] = None,
                  demo_dir: str = 'work_dirs/lavin_tiny_demo') -> WebDemo:
    """Build a :class:`WebDemo` with :func:`mma.load_model`.

    Args:
        config: A config file; None serves the model trained by ``tools/demo.py`` in
            ``demo_dir`` (its config and last checkpoint).
        checkpoint: Adapter weights or a merged model (see :func:`mma.load_model`).
        merge: ``'image'`` or ``'text'``: fold the adapters for that modality.
        cfg_options: Config keys to override.
        demo_dir: Where ``tools/demo.py`` wrote its run.

    Raises:
        DemoError: the model cannot be loaded (missing files, a bad config); the message
            names the cause and says what to do.
    """
    import mma
    from mmengine.config import Config
    try:
        if config is None:
            from mma.apps.demo.run import trained_demo
            cfg, default_ckpt = trained_demo(demo_dir)
            checkpoint = checkpoint or default_ckpt
        else:
            cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        model = mma.load_model(cfg, checkpoint, merge=merge)
    except Exception as err:  # any loading failure is shown in the page, not as a traceback
        raise DemoError(f'The model could not be loaded: {type(err).__name__}: {err}') from err
    return WebDemo(model, cfg)
