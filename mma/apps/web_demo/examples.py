"""Examples for the page: held-out image questions of the served model's test split (for the CPU
demo, the pictures ``tools/demo.py`` wrote to ``work_dirs/lavin_tiny_demo/assets/scienceqa``)."""
import json
import os
from typing import List, Optional


def held_out_examples(data_root: Optional[str], split: str = 'test',
                      count: int = 4) -> List[List[str]]:
    """Up to ``count`` image questions of ``split`` in ScienceQA's layout, different questions
    first, as ``[image file, question, context, choices one per line]`` rows.

    Returns an empty list when ``data_root`` holds no such data (the page then shows none).
    """
    if not data_root:
        return []
    try:
        with open(os.path.join(data_root, 'problems.json')) as f:
            problems = json.load(f)
        with open(os.path.join(data_root, 'pid_splits.json')) as f:
            qids = json.load(f)[split]
    except (OSError, ValueError, KeyError):
        return []
    rows, seen = [], set()
    for distinct in (True, False):  # one per question text first, then fill up
        for qid in qids:
            p = problems.get(qid) or {}
            image = os.path.join(data_root, 'images', split, qid, p.get('image') or '')
            if len(rows) == count or not p.get('image') or not os.path.isfile(image):
                continue
            row = [os.path.abspath(image), p['question'], p.get('hint', ''),
                   '\n'.join(p['choices'])]
            if (distinct and p['question'] in seen) or row in rows:
                continue
            seen.add(p['question'])
            rows.append(row)
    return rows
