"""Data that follows the model: the one mechanism by which datasets and transforms take facts
from the model (visual tokens per image, image size, normalisation, tokenizer).

A transform or dataset class declares what it takes in a class attribute ``FROM_MODEL``, a dict
``{constructor argument: model fact}`` (:class:`~mma.datasets.LoadLaVINImage`,
:class:`~mma.datasets.TokenizeForLaVIN`, :class:`~mma.datasets.PromptDataset`). mma's Runner asks
each config it builds (:func:`mma.engine.sync_data_with_model`, which calls :func:`follow_model`
on every ``type=`` dict of the dataloaders) and fills an argument left None from the model's fact.
A *count the model determines* (:data:`DETERMINED`) that is set by hand must equal the model's
(a :class:`~mma.errors.MMAUserError` naming the key otherwise); the other facts (normalisation,
tokenizer) are defaults that a config may replace.
"""
import inspect
from typing import Any, Dict, Optional

from mma.errors import MMAUserError

from .transforms import LoadLaVINImage, TokenizeForLaVIN

#: Facts the model determines: a value set by hand must be the model's.
DETERMINED = ('num_visual_tokens', 'image_size')


def _mismatch(where: str, arg: str, mine, fact: str, theirs) -> str:
    if fact == 'num_visual_tokens':
        source = ('model.vision is None: a text-only model' if theirs == 0 else
                  "the vision encoder's feature setting (model.vision)")
        said = f'the model inserts {theirs} visual tokens per image ({source})'
    else:
        said = f'the vision encoder (model.vision) takes {theirs} images'
    return (f'{where}.{arg}={mine} but {said}; remove the key from the data config so that it '
            'follows the model')


def model_data_facts(model, tokenizer_cfg: Any = None) -> Dict[str, Any]:
    """What data takes from ``model`` (a :class:`~mma.models.LaVIN` or any model with
    ``num_visual_tokens`` / ``vision``): ``num_visual_tokens``, ``image_size`` (H, W),
    ``image_mean``, ``image_std`` and ``tokenizer`` (``tokenizer_cfg``, else the model's own).
    A fact the model does not state is absent (a text-only model has no image facts)."""
    facts: Dict[str, Any] = {}
    k = getattr(model, 'num_visual_tokens', None)
    if k is not None:
        facts['num_visual_tokens'] = int(k)
    vision = getattr(model, 'vision', None)
    if vision is not None:
        facts['image_size'] = tuple(vision.image_size)
        for name in ('image_mean', 'image_std'):
            if getattr(vision, name, None) is not None:
                facts[name] = tuple(getattr(vision, name))
    tok = tokenizer_cfg if tokenizer_cfg is not None else getattr(model, '_tokenizer', None)
    if tok is not None:
        facts['tokenizer'] = tok
    return facts


def _same(a, b) -> bool:
    def norm(v):
        if isinstance(v, int):
            return (v, v)  # a side: a square image
        return tuple(v) if isinstance(v, (list, tuple)) else v
    return norm(a) == norm(b)


def _defaults(cls) -> Dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def follow_model(cls, cfg: dict, facts: Dict[str, Any], where: str) -> None:
    """Fill the ``FROM_MODEL`` arguments of ``cls`` that ``cfg`` (its config dict, modified in
    place) leaves None from ``facts`` (:func:`model_data_facts`).

    Left None means: set to None, or absent with a None default.

    Raises:
        MMAUserError: a :data:`DETERMINED` count set by hand differs from the model's (naming
            ``where.arg``, both values and what decides the model's).
    """
    declared = getattr(cls, 'FROM_MODEL', None) or {}
    defaults = _defaults(cls) if declared else {}
    for arg, fact in declared.items():
        mine = cfg.get(arg, defaults.get(arg))
        if fact not in facts:
            continue
        theirs = facts[fact]
        if mine is None:
            cfg[arg] = list(theirs) if isinstance(theirs, tuple) else theirs
        elif fact in DETERMINED and arg in cfg and not _same(mine, theirs):
            raise MMAUserError(_mismatch(where, arg, mine, fact, theirs))


def prediction_pipeline(model, max_len: Optional[int] = None) -> list:
    """The transforms that turn a question into a prediction sample for ``model`` (image loading
    when it sees images, then tokenisation without an answer), every model fact filled by
    :func:`follow_model`: the pipeline of ``tools/chat.py`` and of the web demo without a config
    pipeline."""
    facts = model_data_facts(model)
    steps = [(LoadLaVINImage, {})] if 'image_size' in facts else []
    steps.append((TokenizeForLaVIN, dict(max_len=max_len, with_answer=False)))
    pipeline = []
    for cls, cfg in steps:
        follow_model(cls, cfg, facts, cls.__name__)
        pipeline.append(cls(**cfg))
    return pipeline
