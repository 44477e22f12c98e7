import pytest

from mma.datasets.prompts import OUTPUT_FORMATS, build_prompt, parse_format

PROBLEM = dict(question='Which animal is a mammal?', choices=['frog', 'dog', 'snake'], answer=1,
               hint='Look  at the fur.', lecture='Mammals have fur.\nThey feed milk.',
               solution='A dog has fur.  So it is a mammal.')
Q = 'Question: Which animal is a mammal?\n'
C = 'Context: Look at the fur.\n'
M = 'Options: (A) frog (B) dog (C) snake\n'
L = 'Mammals have fur.\\nThey feed milk.'
E = 'A dog has fur. So it is a mammal.'
ANS = 'The answer is B.'

EXPECTED_OUTPUTS = {
    'A': ANS,
    'AL': f'{ANS} BECAUSE: {L}',
    'AE': f'{ANS} BECAUSE: {E}',
    'ALE': f'{ANS} BECAUSE: {L} {E}',
    'AEL': f'{ANS} BECAUSE: {E} {L}',
    'LA': f'{L} {ANS}',
    'EA': f'{E} {ANS}',
    'LEA': f'{L} {E} {ANS}',
    'ELA': f'{E} {L} {ANS}',
}
EXPECTED_INPUTS = {
    'QCM': Q + C + M + 'Response:',
    'CQM': C + Q + M + 'Response:',
    'QCML': Q + C + M + f'BECAUSE: {L}\nResponse:',
    'QCME': Q + C + M + f'BECAUSE: {E}\nResponse:',
    'QCMLE': Q + C + M + f'BECAUSE: {L} {E}\nResponse:',
    'QCLM': Q + C + f'BECAUSE: {L}\n' + M + 'Response:',
    'QCEM': Q + C + f'BECAUSE: {E}\n' + M + 'Response:',
    'QCLEM': Q + C + f'BECAUSE: {L} {E}\n' + M + 'Response:',
}


def test_qcm_ale_exact():
    prompt, target = build_prompt(PROBLEM, 'QCM-ALE')
    assert prompt == ('Question: Which animal is a mammal?\nContext: Look at the fur.\n'
                      'Options: (A) frog (B) dog (C) snake\nResponse:')
    assert target == ('The answer is B. BECAUSE: Mammals have fur.\\nThey feed milk. '
                      'A dog has fur. So it is a mammal.')


@pytest.mark.parametrize('out', OUTPUT_FORMATS)
def test_every_output_format(out):
    assert build_prompt(PROBLEM, f'QCM-{out}') == (EXPECTED_INPUTS['QCM'], EXPECTED_OUTPUTS[out])


@pytest.mark.parametrize('inp', sorted(EXPECTED_INPUTS))
def test_every_input_format(inp):
    assert build_prompt(PROBLEM, f'{inp}-A')[0] == EXPECTED_INPUTS[inp]


def test_empty_context_caption_letters_and_empty_explanation():
    p = dict(PROBLEM, hint='', lecture='', solution='')
    prompt, target = build_prompt(p, 'QCM-ALE', options=('1', '2', '3'))
    assert prompt == ('Question: Which animal is a mammal?\nContext: N/A\n'
                      'Options: (1) frog (2) dog (3) snake\nResponse:')
    assert target == 'The answer is 2.'  # a bare trailing "BECAUSE:" is dropped
    prompt, _ = build_prompt(p, 'QCM-A', caption='A dog on grass.')
    assert 'Context: A dog on grass.\n' in prompt
    prompt, _ = build_prompt(PROBLEM, 'QCM-A', caption='A dog on grass.')
    assert 'Context: Look at the fur. A dog on grass.\n' in prompt


@pytest.mark.parametrize('bad', ['QCM', 'QCX-A', 'QCM-AX', 'QQ-A'])
def test_bad_formats_raise(bad):
    with pytest.raises(ValueError):
        parse_format(bad)
