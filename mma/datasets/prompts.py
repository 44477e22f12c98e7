"""ScienceQA prompt formats of the reference (``QCM-ALE`` and the others).

A format is ``{input}-{output}``. The input part is a sequence of the letters Q (question),
C (context: the hint, plus the caption when asked), M (options), L (lecture) and E (solution, the
"explanation"); consecutive L/E letters share one ``BECAUSE:`` line, as in the reference's
``QCMLE`` / ``QCLEM``. The output part is one of A, AL, AE, ALE, AEL, LA, EA, LEA, ELA: the answer
sentence and the explanation texts in that order, with ``BECAUSE:`` before explanations that
follow the answer.

Exactly (the original LaVIN code's ScienceQA prompt builder), for ``QCM-ALE``::

    input  = 'Question: {q}\\nContext: {hint or "N/A"}\\nOptions: (A) c0 (B) c1 ...\\nResponse:'
    output = 'The answer is {X}. BECAUSE: {lecture} {solution}'

Newlines inside the lecture and solution are written as a literal backslash-n and double spaces
are collapsed (once, as the reference's ``replace('  ', ' ')``); an output that would end in a bare
``BECAUSE:`` (empty lecture and solution) drops it.

Note: the reference's ``AL`` output uses the *solution* and ``AE`` the *lecture* (a naming quirk it
inherited). mma reads the letters literally, L = lecture and E = solution, in every format.
"""
from typing import Dict, Optional, Sequence, Tuple

INPUT_LETTERS = 'QCMLE'
OUTPUT_FORMATS = ('A', 'AL', 'AE', 'ALE', 'AEL', 'LA', 'EA', 'LEA', 'ELA')
DEFAULT_OPTIONS = ('A', 'B', 'C', 'D', 'E')


def _clean(text: str) -> str:
    return text.replace('\n', '\\n')


def context_text(problem: dict, caption: Optional[str] = None) -> str:
    """The hint, with the caption appended when given; ``'N/A'`` when both are empty."""
    context = ' '.join([problem.get('hint') or '', caption or '']).strip()
    return context or 'N/A'


def choice_text(choices: Sequence[str], options: Sequence[str] = DEFAULT_OPTIONS) -> str:
    """``'(A) c0 (B) c1 ...'``."""
    if len(choices) > len(options):
        raise ValueError(f'{len(choices)} choices but only {len(options)} option letters '
                         f'{tuple(options)}')
    return ' '.join(f'({options[i]}) {c}' for i, c in enumerate(choices))


def parse_format(fmt: str) -> Tuple[str, str]:
    """Split and validate ``'QCM-ALE'`` into ``('QCM', 'ALE')``."""
    parts = fmt.split('-')
    if len(parts) != 2:
        raise ValueError(f"prompt format {fmt!r} must look like 'QCM-ALE'")
    inp, out = parts
    if not inp or any(ch not in INPUT_LETTERS for ch in inp) or len(set(inp)) != len(inp):
        raise ValueError(f'prompt format {fmt!r}: input part must use each of the letters '
                         f'{INPUT_LETTERS} at most once')
    if out not in OUTPUT_FORMATS:
        raise ValueError(f'prompt format {fmt!r}: output part must be one of {OUTPUT_FORMATS}')
    return inp, out


def build_prompt(problem: dict, fmt: str = 'QCM-ALE', options: Sequence[str] = DEFAULT_OPTIONS,
                 caption: Optional[str] = None) -> Tuple[str, str]:
    """The (input, target) texts of one ScienceQA problem.

    Args:
        problem: A ``problems.json`` entry (question, choices, answer, hint, lecture, solution).
        fmt: Prompt format, e.g. ``'QCM-ALE'`` (training) or ``'CQM-A'``.
        options: Option letters, one per choice.
        caption: Image caption appended to the context (``use_caption``); None for none.

    Returns:
        ``(input, target)``; the input ends with ``'Response:'``.
    """
    inp, out = parse_format(fmt)
    fields: Dict[str, str] = dict(
        Q=problem['question'], C=context_text(problem, caption),
        M=choice_text(problem['choices'], options), L=_clean(problem.get('lecture') or ''),
        E=_clean(problem.get('solution') or ''))
    lines = []
    i = 0
    while i < len(inp):
        ch = inp[i]
        if ch in 'LE':  # consecutive L/E share one BECAUSE line
            j = i
            while j < len(inp) and inp[j] in 'LE':
                j += 1
            lines.append('BECAUSE: ' + ' '.join(fields[c] for c in inp[i:j]))
            i = j
            continue
        lines.append({'Q': 'Question: ', 'C': 'Context: ', 'M': 'Options: '}[ch] + fields[ch])
        i += 1
    prompt = '\n'.join(lines).replace('  ', ' ').strip() + '\nResponse:'

    answer = f"The answer is {options[problem['answer']]}."
    expl = ' '.join(fields[c] for c in out if c in 'LE')
    if out.startswith('A'):
        target = answer + (f' BECAUSE: {expl}' if len(out) > 1 else '')
    else:
        target = f'{expl} {answer}'
    target = target.replace('  ', ' ').strip()
    if target.endswith('BECAUSE:'):
        target = target[:-len('BECAUSE:')].strip()
    return prompt, target
