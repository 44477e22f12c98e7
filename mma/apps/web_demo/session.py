"""The web demo without a browser: prompt, batch, streamed generation, router weights, errors.

:class:`WebDemo` turns what a user typed (question, optional ScienceQA-style choices and context,
optional image, a text-only switch) into the batch the evaluation builds for a ScienceQA question
(the config's test pipeline and :func:`~mma.datasets.mma_collate`), decodes it with the model's
own ``generation_cfg`` (what ``tools/test.py`` uses: KV cache, stop rules) and streams the answer.
Everything a user can get wrong comes back as a message (:class:`DemoError`), never a traceback.
"""
import copy
import queue
import threading
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

from mma.apps.visualization.routing import llm_routing, router_weights
from mma.datasets import (TokenizeForLaVIN, build_prompt, instruction, mma_collate,
                          prediction_pipeline)
from mma.datasets.prompts import DEFAULT_OPTIONS
from mma.evaluation.scienceqa_metric import parse_answer
from mma.models.generation import GenerationConfig

from .errors import DemoError
from .images import check_upload


@dataclass
class Reply:
    """One update of a streamed answer.

    ``text``: the answer so far (the final, stop-rule-cut text when ``done``); ``routing``: per
    routed LLM adapter (``'layers.0.adapter_attn'``) its router weights over the K experts,
    known once generation ends; ``error``: a message for the page instead of an answer.
    """
    text: str = ''
    done: bool = False
    routing: Optional[Dict[str, List[float]]] = None
    error: Optional[str] = None
    has_image: bool = False
    prompt: str = ''
    notes: List[str] = field(default_factory=list)


class _Cancelled(Exception):
    """Raised inside the generation thread when the request was closed."""


_DONE = object()


def parse_choices(text: Optional[str]) -> List[str]:
    """Choices typed one per line (blank lines ignored)."""
    return [line.strip() for line in (text or '').splitlines() if line.strip()]


def router_paths(model) -> Optional[Dict[str, List[str]]]:
    """What each expert of each routed LLM adapter carries: ``{'layers.0.adapter_attn':
    ['text path', 'image path']}``.

    The routers are built alike for every expert (``ModalityRouter``: a Linear over the modality
    token's hidden state); which expert serves which modality is learned. Per adapter, the
    expert whose weight rises most from text-only to image input is the image path, the one
    that falls most the text path (with two experts, one rises as much as the other falls).
    None for a model without routed LLM adapters.
    """
    try:
        weights = router_weights(model)
    except ValueError:  # no routed LLM adapters (none configured, or merged)
        return None
    paths = {}
    for name, w in weights.items():
        rise = (w[0] - w[1]).tolist()  # row 0 image, row 1 text-only
        labels = [f'expert {k}' for k in range(len(rise))]
        if len(rise) > 1 and max(rise) > min(rise):
            labels[rise.index(max(rise))] = 'image path'
            labels[rise.index(min(rise))] = 'text path'
        paths[name] = labels
    return paths


class WebDemo:
    """A loaded model plus the test pipeline of its config, ready to answer questions.

    Args:
        model: A :class:`~mma.models.LaVIN` in eval mode with a tokenizer
            (:func:`mma.load_model`).
        cfg: Its config; ``test_dataloader.dataset`` gives the prompt format, option letters and
            pipeline (image loading and tokenisation) of evaluation. Without one, the chat
            layout of ``tools/chat.py`` is used.
    """

    def __init__(self, model, cfg=None):
        from mma.registry import TRANSFORMS
        if model.tokenizer is None:
            raise DemoError('the model config has no tokenizer (model.tokenizer): the demo '
                            'cannot turn generated ids into text')
        self.model = model
        if cfg is not None:  # the data pipeline takes the model's visual tokens and image size
            from mma.engine.runner import sync_data_with_model
            cfg = copy.deepcopy(cfg)
            sync_data_with_model(cfg, model)
        dataset = ((cfg or {}).get('test_dataloader') or {}).get('dataset') or {}
        self.prompt_format = dataset.get('prompt_format', 'QCM-A')
        #: A model evaluated on ScienceQA-format questions (its config has a test data set)
        #: answers with an option letter: the page asks for choices. Without one it chats.
        self.multiple_choice = bool(dataset)
        self.data_root = dataset.get('data_root')
        self.options: Sequence[str] = dataset.get('options') or DEFAULT_OPTIONS
        pipeline = [TRANSFORMS.build(dict(t)) for t in dataset.get('pipeline') or []]
        if not any(isinstance(t, TokenizeForLaVIN) for t in pipeline):  # chat's pipeline
            pipeline = prediction_pipeline(model, max_len=model.llm.max_seq_len)
        self.pipeline = pipeline
        self.tokenize = next(t for t in pipeline if isinstance(t, TokenizeForLaVIN))
        self.generation = GenerationConfig(**model.generation_cfg)
        # One generation at a time: the UI queues requests, and this lock keeps a request that
        # is still winding down from running beside the next one.
        self._lock = threading.Lock()

        self.router_paths = router_paths(model)

    # ------------------------------------------------------------------------------ inputs --
    @property
    def sees_images(self) -> bool:
        return self.model.vision is not None

    def decoding_settings(self) -> Dict:
        """The decoding settings every answer uses (the config's ``generation_cfg``)."""
        return asdict(self.generation)

    def chosen_option(self, text: str, choices: Sequence[str]) -> Optional[str]:
        """``'(B) green'``: the option that answer ``text`` names (``The answer is B.``, as the
        ScienceQA metric reads it), or None when it names none of ``choices``."""
        idx = parse_answer(text, len(choices))
        return None if idx < 0 else f'({self.options[idx]}) {choices[idx]}'

    def prompt(self, question: str, choices: Sequence[str] = (), context: str = '') -> str:
        """The prompt text: the config's ScienceQA format when choices are given (the exact text
        evaluation builds for such a question), else the chat template of ``tools/chat.py``."""
        question = (question or '').strip()
        if not question:
            raise DemoError('Type a question first.')
        if choices:
            if len(choices) > len(self.options):
                raise DemoError(f'{len(choices)} choices, but the prompt format has only '
                                f'{len(self.options)} option letters ({", ".join(self.options)})'
                                ': give fewer choices.')
            # answer, lecture and solution only shape the target text, which is not used here
            problem = dict(question=question, hint=(context or '').strip(), choices=list(choices),
                           answer=0, lecture='', solution='')
            return build_prompt(problem, self.prompt_format, self.options)[0]
        context = (context or '').strip()
        return instruction(f'{context}\n{question}' if context else question)

    def sample(self, question: str, choices: Sequence[str] = (), context: str = '',
               image: Optional[str] = None, text_only: bool = False,
               max_new_tokens: Optional[int] = None) -> dict:
        """The pipeline's output for one request (before collation); raises :class:`DemoError`.

        ``max_new_tokens`` (default: the config's) must fit in the context after the prompt.
        """
        new = self.generation.max_new_tokens if max_new_tokens is None else max_new_tokens
        prompt = self.prompt(question, choices, context)
        use_image = image is not None and not text_only and self.sees_images
        if use_image:  # the size limit and decoding, with the upload's own file name
            check_upload(image)
        results = dict(qid='web demo', prompt=prompt, img_path=image if use_image else None)
        positions, drop, _ = self.tokenize.measure(results)
        limit = self.model.llm.max_seq_len
        if drop != 0 or positions + new > limit:
            raise DemoError(
                f'The prompt is too long: it takes {positions} positions (text'
                f'{" and image tokens" if use_image else ""}), the answer up to '
                f'{new} more, and the model\'s context holds {limit}'
                f'{f" (the pipeline allows {self.tokenize.max_len})" if drop else ""}. '
                'Shorten the question or the context.')
        for transform in self.pipeline:
            results = transform(results)
        return results

    # ------------------------------------------------------------------------------ answer --
    def stream(self, question: str, choices: Sequence[str] = (), context: str = '',
               image: Optional[str] = None, text_only: bool = False,
               **generation) -> Iterator[Reply]:
        """Answer one request, yielding the text as it grows; the last reply has ``done``.

        Generation runs in a worker thread; closing this generator (the browser closed the
        request) stops it at its next piece of text. ``generation`` overrides decoding fields
        (tests); the page uses the config's.
        """
        notes = []
        if image is not None and not text_only and not self.sees_images:
            notes.append('This model has no vision encoder: the image is ignored.')
        new = GenerationConfig(**{**self.model.generation_cfg, **generation}).max_new_tokens
        try:
            sample = self.sample(question, choices, context, image, text_only, new)
        except DemoError as err:
            yield Reply(error=str(err), done=True, notes=notes)
            return
        except Exception as err:  # a pipeline failure: a message, and the server keeps serving
            yield Reply(error=f'The request could not be prepared: {type(err).__name__}: {err}',
                        done=True, notes=notes)
            return
        batch = mma_collate([sample])
        info = dict(has_image=bool(sample['inputs']['has_image']),
                    prompt=sample['data_samples']['prompt'], notes=notes)
        chunks: queue.Queue = queue.Queue()
        stop = threading.Event()
        result: dict = {}

        def on_text(_i: int, piece: str) -> None:
            if stop.is_set():
                raise _Cancelled
            chunks.put(piece)

        def work() -> None:
            try:
                with self._lock:
                    if not stop.is_set():
                        result['out'] = self.model.generate(batch['inputs'], on_text=on_text,
                                                            **generation)
            except _Cancelled:
                pass
            except Exception as err:  # shown in the page; the server keeps serving
                result['error'] = err
            finally:
                chunks.put(_DONE)

        worker = threading.Thread(target=work, name='mma-web-demo-generate', daemon=True)
        worker.start()
        text = ''
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    break
                text += item
                yield Reply(text=text, **info)
        finally:
            stop.set()  # reached on close() too: a closed request stops generating
        worker.join()
        if 'error' in result:
            err = result['error']
            yield Reply(text=text, done=True, error=f'Generation failed: {type(err).__name__}: '
                        f'{err}', **info)
            return
        out = result['out']
        routing = {name: w.reshape(-1, w.shape[-1])[0].tolist()
                   for name, w in llm_routing(self.model, out.routing).items()}
        yield Reply(text=out.texts[0], done=True, routing=routing or None, **info)

    def answer(self, *args, **kwargs) -> Reply:
        """The final reply of :meth:`stream`."""
        reply = Reply()
        for reply in self.stream(*args, **kwargs):
            pass
        return reply
