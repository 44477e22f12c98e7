"""VQAv2 accuracy with the official answer normalisation (VQA API ``vqaEval.py``)."""
import re
from typing import Dict, List, Sequence

from mmengine.logging import MMLogger

from mma.registry import METRICS

from .base import PredictionFileMetric

# The official table of contractions written without apostrophes (key -> value), quirks kept
# (e.g. "somebody'd" -> "somebodyd"). Stored as "key=value" pairs.
_CONTRACTIONS = """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't
mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at
'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've
shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's
someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll
someones=someone's somethingd=something'd somethingd've=something'd've
something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd
theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas
wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll
whatre=what're whats=what's whatve=what've whens=when's whered=where'd wheres=where's
whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
you'dve=you'd've youll=you'll youre=you're youve=you've
"""
CONTRACTIONS = dict(p.split('=', 1) for p in _CONTRACTIONS.split())
NUMBERS = {w: str(i) for i, w in enumerate(
    'zero one two three four five six seven eight nine ten'.split())}
NUMBERS['none'] = '0'
ARTICLES = {'a', 'an', 'the'}
PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`',
         ',', '?', '!']
_PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')  # sic: the official (no-op) look-behind typo
_COMMA_STRIP = re.compile(r'(\d)(,)(\d)')


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``."""
    out = text
    for p in PUNCT:
        if (p + ' ' in text or ' ' + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, '')
        else:
            out = out.replace(p, ' ')
    # the official passes re.UNICODE (32) positionally, i.e. as ``count``
    return _PERIOD_STRIP.sub('', out, re.UNICODE)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: number words to digits, articles dropped,
    contractions restored."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return ' '.join(CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text: str) -> str:
    text = text.replace('\n', ' ').replace('\t', ' ').strip()
    return process_digit_article(process_punctuation(text))


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the (10) human answers.

    As the official ``vqaEval.py``: the prediction is normalised (punctuation, number words,
    articles, contractions); the human answers get the punctuation step only, and only when they
    disagree. For each human answer, ``min(1, #matching other answers / 3)``; the accuracy is the
    mean over the answers (the 10-choose-9 subsets), so 3 matching answers out of 10 score 0.9.
    """
    pred = normalize_answer(pred)
    gts = [a.replace('\n', ' ').replace('\t', ' ').strip() for a in gt_answers]
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        accs.append(min(1.0, sum(a == pred for a in others) / 3.0))
    return sum(accs) / len(accs)


@METRICS.register_module()
class VQAv2Metric(PredictionFileMetric):
    """VQAv2 accuracy (%) overall and per answer type (``yes/no``, ``number``, ``other``).

    Data samples carry ``question_id``, ``answers`` (the human answers), ``answer_type`` and the
    prediction ``pred_text``. Without ground truth (test-dev) only the prediction file is written.

    Args:
        prediction_file: Where to write ``[{"question_id", "answer"}]`` (the EvalAI format).
    """
    default_prefix = 'vqav2'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            answers = s.get('answers')
            acc = vqa_accuracy(s['pred_text'], answers) if answers else None
            self.results.append(dict(question_id=s.get('question_id'), answer=s['pred_text'].strip(),
                                     answer_type=s.get('answer_type'), accuracy=acc))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        self.write_predictions([dict(question_id=r['question_id'], answer=r['answer'])
                           for r in results])
        scored = [r for r in results if r['accuracy'] is not None]
        if not scored:
            return {}
        metrics = dict(accuracy=100.0 * sum(r['accuracy'] for r in scored) / len(scored))
        for t in sorted({r['answer_type'] for r in scored if r['answer_type']}):
            rows = [r for r in scored if r['answer_type'] == t]
            metrics[t] = 100.0 * sum(r['accuracy'] for r in rows) / len(rows)
        MMLogger.get_current_instance().info(
            'VQAv2: ' + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
        return metrics
