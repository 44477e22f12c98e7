"""Task functions of the test tasks: ScienceQA questions in the official (and demo) layout, read
from ``scienceqa/`` under the working directory (the YAMLs' ``data_files`` are relative to it).

The prompt is mma's ``QCM-ALE`` prompt, the one ``tools/test.py`` gives the model, and the answer
is parsed as mma's ScienceQA metric parses it, so both paths score the same questions alike.
"""
import json
import os

from datasets import Dataset
from PIL import Image

from mma.datasets import build_prompt
from mma.evaluation.scienceqa_metric import parse_answer

ROOT = 'scienceqa'
SPLIT = 'test'
PROMPT_FORMAT = 'QCM-ALE'


def process_docs(dataset: Dataset) -> Dataset:
    """``problems.json`` loads as one row whose columns are the qids: one doc per qid of the
    split, in the order of ``pid_splits.json`` (the order of ``tools/test.py``)."""
    problems = dataset[0]
    with open(os.path.join(ROOT, 'pid_splits.json')) as f:
        qids = json.load(f)[SPLIT]
    return Dataset.from_list([dict(problems[q], qid=q) for q in qids])


def doc_to_visual(doc):
    if not doc['image']:
        return []
    img = Image.open(os.path.join(ROOT, 'images', doc['split'], doc['qid'], doc['image']))
    img.load()
    return [img]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return build_prompt(doc, PROMPT_FORMAT)[0]


def doc_to_choice(doc):
    return list(doc['choices'])


def process_results(doc, results):
    """Accuracy (%) as mma's ScienceQA metric scores it: the first ``The answer is X.``."""
    pred = parse_answer(results[0], len(doc['choices']))
    return {'accuracy': 100.0 * (pred == int(doc['answer']))}
