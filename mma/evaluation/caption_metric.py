"""COCO caption metrics: BLEU-1..4 and CIDEr-D, computed as pycocoevalcap computes them.

The scoring follows pycocoevalcap's ``BleuScorer`` (corpus BLEU, "closest" reference length,
its 1e-9/1e-15 smoothing) and ``CiderScorer`` (CIDEr-D: tf-idf n-grams 1..4 with document
frequencies from the references of the evaluated set, clipped hypothesis weights, Gaussian
length penalty sigma 6, x10). pycocoevalcap tokenises with Stanford's Java PTBTokenizer; here
:func:`ptb_tokenize` does the same in Python for caption text (lower case, clitics such as
``n't``/``'s`` split off, the punctuation tokens pycocoevalcap removes dropped), so no Java is
needed. Scores are reported x100 as in papers.
"""
import math
import re
from collections import Counter
from typing import Dict, List, Sequence, Tuple

from mmengine.logging import MMLogger

from mma.registry import METRICS

from .base import PredictionFileMetric

_TOKEN = re.compile(r"n't|'[a-z]+|[a-z0-9]+(?:[.,][0-9]+)*(?=n't)|[a-z0-9]+(?:[.,][0-9]+)*|\S")
PUNCTUATIONS = {"''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',',
                ':', '-', '--', '...', ';', '(', ')', '{', '}', '"'}


def ptb_tokenize(text: str) -> str:
    """Lower-case PTB-style tokens joined by spaces, punctuation removed."""
    toks = _TOKEN.findall(text.lower().replace('\n', ' '))
    return ' '.join(t for t in toks if t not in PUNCTUATIONS)


def ngrams(words: Sequence[str], n: int = 4) -> Counter:
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1)
                   for i in range(len(words) - k + 1))


def bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4) -> List[float]:
    """Corpus BLEU-1..n of tokenised hypotheses against their references (pycocoevalcap)."""
    small, tiny = 1e-9, 1e-15
    guess, correct = [0] * n, [0] * n
    testlen = reflen = 0
    for hyp, rs in zip(hyps, refs):
        words = hyp.split()
        counts = ngrams(words, n)
        maxref: Counter = Counter()
        for r in rs:
            maxref |= ngrams(r.split(), n)
        lens = [len(r.split()) for r in rs]
        testlen += len(words)
        reflen += min((abs(x - len(words)), x) for x in lens)[1]
        for k in range(n):
            guess[k] += max(0, len(words) - k)
        for g, c in counts.items():
            correct[len(g) - 1] += min(c, maxref.get(g, 0))
    scores, prod = [], 1.0
    for k in range(n):
        prod *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(prod**(1.0 / (k + 1)))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4,
            sigma: float = 6.0) -> Tuple[float, List[float]]:
    """CIDEr-D (pycocoevalcap's ``Cider``): mean and per-sample scores."""
    crefs = [[ngrams(r.split(), n) for r in rs] for rs in refs]
    df: Counter = Counter()
    for rs in crefs:
        df.update(set(g for r in rs for g in r))
    log_n = math.log(float(len(crefs)))

    def vec(cnts):
        v = [dict() for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for g, tf in cnts.items():
            k = len(g) - 1
            v[k][g] = float(tf) * (log_n - math.log(max(1.0, df[g])))
            norm[k] += v[k][g]**2
            if k == 1:  # pycocoevalcap counts the length from bigrams
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    scores = []
    for hyp, rs in zip(hyps, crefs):
        vh, nh, lh = vec(ngrams(hyp.split(), n))
        total = [0.0] * n
        for r in rs:
            vr, nr, lr = vec(r)
            for k in range(n):
                val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    val /= nh[k] * nr[k]
                total[k] += val * math.exp(-((lh - lr)**2) / (2 * sigma**2))
        scores.append(sum(total) / n / len(rs) * 10.0)
    return sum(scores) / len(scores), scores


@METRICS.register_module()
class COCOCaptionMetric(PredictionFileMetric):
    """BLEU-4 and CIDEr (x100) of generated captions (``pred_text``) against ``captions``.

    Args:
        prediction_file: Where to write ``[{"image_id", "caption"}]`` (the COCO results format).
    """
    default_prefix = 'coco'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            self.results.append(dict(image_id=s.get('image_id'), caption=s['pred_text'].strip(),
                                     refs=list(s['captions'])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        hyps = [ptb_tokenize(r['caption']) for r in results]
        refs = [[ptb_tokenize(c) for c in r['refs']] for r in results]
        b = bleu(hyps, refs)
        metrics = {f'BLEU-{k + 1}': 100.0 * b[k] for k in range(4)}
        metrics['CIDEr'] = 100.0 * cider_d(hyps, refs)[0]
        self.write_predictions([dict(image_id=r['image_id'], caption=r['caption'])
                                for r in results])
        MMLogger.get_current_instance().info(
            'COCO caption: ' + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
        return metrics
