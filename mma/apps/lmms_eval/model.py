"""The lmms-eval model ``mma``: a trained LaVIN answering lmms-eval's requests.

``generate_until`` runs LaVIN's batched generation (:meth:`mma.models.LaVIN.generate`);
``loglikelihood`` scores continuations as mma's own multiple-choice evaluation does (samples with
``choice_ids`` predicted by :meth:`~mma.models.LaVIN.predict`, i.e. ``choice_logliks``). Prompts
and images go through the data pipeline of the config (its ``LoadLaVINImage`` and
``TokenizeForLaVIN`` steps, of ``test_dataloader``, else ``val_dataloader`` or
``train_dataloader``; without one, :func:`~mma.datasets.prediction_pipeline` of the model) by
:func:`~mma.datasets.run_pipeline`, and batches through :func:`~mma.datasets.mma_collate` and the
model's data preprocessor, as ``tools/test.py`` does: a question scored here and by
``tools/test.py`` sees the same tokens and pixels. The task's text (``doc_to_text``) is the
prompt; LaVIN's ``Image: `` prefix and visual tokens come before it, as in training.

Model arguments (``--model_args key=value,...``):
    config: The mma config file (model, data pipeline, ``generation_cfg``).
    checkpoint: Adapter weights or a merged ``.safetensors`` (as ``tools/test.py``'s CHECKPOINT).
    merge: ``image`` or ``text``: fold the adapters for one modality (then only questions of that
        modality are valid, as with ``mma.load_model(merge=...)``); default none.
    dtype: Dtype of the frozen weights (``bfloat16``, ``float16``, ``float32``); default the
        config's.
    device: Default ``cuda`` (``cuda:LOCAL_RANK`` under ``accelerate launch``) when available,
        else ``cpu``.
    batch_size: Requests per forward pass (also lmms-eval's ``--batch_size``).
    prompt: ``task`` (default): the task's text is the prompt; ``instruction``: it goes into mma's
        instruction template ``Instruction: {text}\nResponse:`` (the chatbot recipe's, and the
        prompt of mma's own VQAv2, MME and COCO evaluations).
    answer_regex: Return the first group of this regex's first match in the generated text
        (the whole text when it does not match), e.g. ``The answer is ([A-Z])`` turns LaVIN's
        ScienceQA answers into the option letter lmms-eval's ``scienceqa_img`` scores.
"""
import json
import os
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from mmengine.config import Config
from PIL import Image
from tqdm import tqdm

from mma.datasets import (LoadLaVINImage, TokenizeForLaVIN, instruction, mma_collate,
                          prediction_pipeline, run_pipeline)
from mma.engine import sync_data_with_model
from mma.loading import load_model
from mma.registry import TRANSFORMS

#: lmms-eval ``generation_kwargs`` that mma reads; others are reported once and ignored.
_GENERATION_KEYS = ('until', 'max_new_tokens', 'temperature', 'top_p', 'do_sample', 'num_beams')
_PIPELINE_SOURCES = ('test_dataloader', 'val_dataloader', 'train_dataloader')
PROMPTS = ('task', 'instruction')


def prediction_steps(cfg, model) -> list:
    """The ``LoadLaVINImage`` and ``TokenizeForLaVIN`` transforms (the latter without answers) of
    the first dataloader of :data:`_PIPELINE_SOURCES` whose dataset (or wrapped dataset) has a
    ``TokenizeForLaVIN``; ``cfg`` has been synced with ``model``
    (:func:`mma.engine.sync_data_with_model`). Without one (datasets that build their own samples:
    VQAv2, MME, COCO), :func:`~mma.datasets.prediction_pipeline` of ``model``; a model with a
    vision encoder and a pipeline without image loading takes the image step from there too."""
    for key in _PIPELINE_SOURCES:
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']
        # steps by registered class, not by type-name strings (a config may name a subclass)
        steps = {}
        for t in dataset.get('pipeline') or []:
            cls = TRANSFORMS.get(t['type']) if isinstance(t, dict) else None
            for kind in (TokenizeForLaVIN, LoadLaVINImage):
                if isinstance(cls, type) and issubclass(cls, kind):
                    steps[kind] = t
        if TokenizeForLaVIN in steps:
            break
    else:
        return prediction_pipeline(model)
    tokenize = TRANSFORMS.build(dict(steps[TokenizeForLaVIN], with_answer=False, meta_keys=()))
    if model.vision is None:  # a text-only model ignores images
        return [tokenize]
    if LoadLaVINImage not in steps:  # a text-only data set: the model's image facts
        return prediction_pipeline(model)[:1] + [tokenize]
    return [TRANSFORMS.build(dict(steps[LoadLaVINImage])), tokenize]


def _default_device(device: Optional[str]) -> str:
    """``device`` as given, with ``cuda`` bound to this process's GPU under a multi-process launch
    (``LOCAL_RANK``); without one, ``cuda`` when available, else ``cpu``."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and int(os.environ.get('WORLD_SIZE', 1)) > 1:
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    return device


def _chunks(items: Sequence[int], size: int) -> List[Sequence[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class MMA(lmms):
    """A LaVIN loaded with :func:`mma.load_model` (see the module docstring for the arguments)."""

    is_simple = True

    def __init__(self, config: str, checkpoint: Optional[str] = None,
                 merge: Optional[str] = None, dtype: Optional[str] = None,
                 device: Optional[str] = None, batch_size: Union[int, str] = 1,
                 max_batch_size: Optional[int] = None, prompt: str = 'task',
                 answer_regex: Optional[str] = None):
        # max_batch_size: passed by lmms-eval for its automatic batch size, which mma does not do
        super().__init__()
        if str(batch_size).startswith('auto'):
            raise ValueError("mma: batch_size='auto' is not supported; give a number")
        self.batch_size = int(batch_size)
        if prompt not in PROMPTS:
            raise ValueError(f'mma: prompt={prompt!r}; expected one of {PROMPTS}')
        self.prompt = prompt
        self.answer_regex = re.compile(answer_regex) if answer_regex else None
        if merge in ('', 'none', 'None'):
            merge = None
        if dtype is not None and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ValueError(f'mma: dtype={dtype!r} is not a torch dtype (e.g. bfloat16)')
        if not os.path.isfile(str(config)):
            raise FileNotFoundError(f'mma: config file not found: {config}')
        cfg = Config.fromfile(str(config))
        self._device = torch.device(_default_device(device))
        self.model = load_model(cfg, checkpoint, device=self._device, merge=merge,
                                dtype=getattr(torch, dtype) if dtype else None)
        if self.model.tokenizer is None:
            raise ValueError(f'mma: {config} configures no model.tokenizer; generation needs one')
        sync_data_with_model(cfg, self.model)  # visual tokens, image size, tokenizer: the model's
        self.pipeline = prediction_steps(cfg, self.model)
        self.load_image = next((t for t in self.pipeline if isinstance(t, LoadLaVINImage)), None)
        self.tokenize = next(t for t in self.pipeline if isinstance(t, TokenizeForLaVIN))
        self._ignored_keys = set()

    @property
    def device(self) -> torch.device:
        return self._device

    # ----------------------------------------------------------------------------- inputs --
    def sample(self, context: str, visuals, where: str) -> dict:
        """One request as a sample of the pipeline (``where`` names it in errors). LaVIN takes one
        image per question; more, or a video or audio, is an error."""
        flat = []
        for v in visuals if isinstance(visuals, (list, tuple)) else [visuals]:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        flat = [v for v in flat if v is not None]
        if len(flat) > 1:
            raise ValueError(f'mma: {where} has {len(flat)} visuals; LaVIN takes one image per '
                             'question')
        if flat and not isinstance(flat[0], Image.Image):
            raise ValueError(f'mma: {where} gives a {type(flat[0]).__name__} visual; mma takes '
                             'images (PIL), not video or audio')
        image = None
        if flat and self.load_image is not None:  # a text-only model ignores images
            image = self.load_image.from_image(flat[0])
        if self.prompt == 'instruction':
            context = instruction(context)
        # img_path only marks an image sample: the image is given, not read
        return run_pipeline(self.pipeline, context, img_path=where if image is not None else None,
                            image=image, qid=where)

    def _doc_sample(self, req: Instance, context: str) -> dict:
        doc_to_visual, doc_id, task, split = req.args[-4:]
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else None
        return self.sample(context, visuals, f'{task}/{split} doc {doc_id}')

    def _batch(self, samples: List[dict], choices: Optional[List[List[int]]] = None) -> dict:
        """Collate as ``tools/test.py``'s dataloader and prepare as the Runner does; with
        ``choices`` (one continuation per sample), a batch that :meth:`~mma.models.LaVIN.predict`
        scores by log-likelihood."""
        if choices is not None:
            for s, c in zip(samples, choices):
                s['inputs'].update(choice_ids=[c], prediction='score_choices')
        return self.model.data_preprocessor(mma_collate(samples), False)['inputs']

    # ------------------------------------------------------------------------- generation --
    def generation_overrides(self, gen_kwargs: dict) -> dict:
        """lmms-eval ``generation_kwargs`` as :class:`~mma.models.generation.GenerationConfig`
        overrides of the config's ``generation_cfg``: ``until`` -> stop strings,
        ``max_new_tokens``, ``temperature`` / ``top_p`` (sampling only with ``do_sample``)."""
        gen_kwargs = dict(gen_kwargs or {})
        if int(gen_kwargs.get('num_beams') or 1) > 1:
            raise ValueError(f'mma: num_beams={gen_kwargs["num_beams"]}: mma decodes greedily or '
                             'by sampling, not by beam search')
        ignored = sorted(set(gen_kwargs) - set(_GENERATION_KEYS) - self._ignored_keys)
        if ignored:
            warnings.warn(f'mma: generation_kwargs {ignored} are not used by mma')
            self._ignored_keys.update(ignored)
        out = {}
        until = gen_kwargs.get('until')
        if until:
            out['stop_strings'] = [until] if isinstance(until, str) else list(until)
        if gen_kwargs.get('max_new_tokens') is not None:
            out['max_new_tokens'] = int(gen_kwargs['max_new_tokens'])
        sample = bool(gen_kwargs.get('do_sample')) and float(gen_kwargs.get('temperature')
                                                             or 0) > 0
        if sample:
            out['temperature'] = float(gen_kwargs['temperature'])
            if gen_kwargs.get('top_p') is not None:
                out['top_p'] = float(gen_kwargs['top_p'])
        elif 'temperature' in gen_kwargs or 'do_sample' in gen_kwargs:
            out['temperature'] = 0.0
        return out

    def generate_until(self, requests: List[Instance]) -> List[str]:
        """Continue each request's prompt; requests with the same ``generation_kwargs`` are
        batched (``batch_size`` at a time) and answers come back in request order."""
        groups: Dict[str, List[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        out: List[Optional[str]] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc='mma generate_until')
        for idx in groups.values():
            overrides = self.generation_overrides(requests[idx[0]].args[1])
            for chunk in _chunks(idx, self.batch_size):
                inputs = self._batch([self._doc_sample(requests[i], requests[i].args[0])
                                      for i in chunk])
                texts = self.model.generate(inputs, **overrides).texts
                for i, text in zip(chunk, texts):
                    out[i] = text = self.extract_answer(text)
                    self.cache_hook.add_partial('generate_until', requests[i].args[:2], text)
                bar.update(len(chunk))
        bar.close()
        return out

    def extract_answer(self, text: str) -> str:
        """The first group of ``answer_regex`` in ``text`` (``text`` when unset or unmatched)."""
        m = self.answer_regex.search(text) if self.answer_regex is not None else None
        return m.group(1) if m is not None and m.groups() else text

    def generate_until_multi_round(self, requests) -> List[str]:
        raise NotImplementedError('mma: multi-round generation is not supported')

    # ---------------------------------------------------------------------------- scoring --
    def continuation_ids(self, continuation: str, where: str = 'a request') -> List[int]:
        """Token ids of a continuation: the answer piece of mma's text layout (a new word after
        the prompt, as training saw answers), whatever whitespace the task puts before it."""
        if not continuation.strip():
            raise ValueError(f'mma: {where} has an empty continuation to score')
        return self.tokenize.encode_piece(continuation.lstrip())

    def score(self, samples: List[dict], continuations: List[List[int]]
              ) -> List[Tuple[float, bool]]:
        """``(summed negative log-likelihood, is_greedy)`` of each continuation (token ids) after
        its sample's prompt (:meth:`sample`), in one batch; ``is_greedy``: greedy decoding from
        the prompt produces the continuation."""
        inputs = self._batch(samples, continuations)
        scores = [p['choice_logliks'][0] for p in self.model.predict(inputs)]
        gen = self.model.generate(inputs, max_new_tokens=max(len(c) for c in continuations),
                                  temperature=0.0, stop_at_eos=False, stop_strings=(),
                                  stop_pattern=None)
        return [(-float(s), tokens[:len(c)] == c)
                for s, c, tokens in zip(scores, continuations, gen.tokens)]

    def loglikelihood(self, requests: List[Instance]) -> list:
        """:meth:`score` of each request's continuation, ``batch_size`` requests at a time.
        lmms-eval's multiple-choice scoring picks the option of lowest score (its models return
        a loss), hence the negative log-likelihood."""
        out: List[Tuple[float, bool]] = []
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc='mma loglikelihood')
        for chunk in _chunks(requests, self.batch_size):
            samples, conts = [], []
            for req in chunk:
                if len(req.args) < 6:
                    raise NotImplementedError('mma: loglikelihood without a document (e.g. '
                                              "lmms-eval's acc_mutual_info) is not supported")
                context, target, _, doc_id, task, split = req.args
                doc = self.task_dict[task][split][doc_id]
                continuation = target if isinstance(target, str) else target(doc)
                samples.append(self._doc_sample(req, context))
                conts.append(self.continuation_ids(str(continuation),
                                                   f'{task}/{split} doc {doc_id}'))
            for req, pair in zip(chunk, self.score(samples, conts)):
                out.append(pair)
                self.cache_hook.add_partial('loglikelihood', req.args[:2], pair)
            bar.update(len(chunk))
        bar.close()
        return _through_evaluator(out)


def _through_evaluator(pairs: List[Tuple[float, bool]]) -> list:
    """``pairs`` as lmms-eval's evaluator needs them. lmms-eval 0.7.3 passes every model output
    through ``unwrap_generation_output``, which turns a ``(score, is_greedy)`` pair into its
    ``str()``, so that its multiple-choice scoring fails (``too many values to unpack``) for every
    model; where it does, each pair goes inside the ``GenerationResult`` whose ``text`` the
    evaluator passes on unchanged."""
    try:
        from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
    except ImportError:  # versions without the wrapper keep pairs as they are
        return pairs
    if unwrap_generation_output((0.0, False))[0] == (0.0, False):
        return pairs
    return [GenerationResult(text=p) for p in pairs]
