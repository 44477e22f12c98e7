"""tools/test.py: one process prints the table and writes predictions; two gloo processes give
exactly the same metrics and predictions."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import randomize_adapters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_config(path, tokenizer_path, sqa_root):
    from mma.toy import tiny_lavin_cfg
    model = tiny_lavin_cfg(vocab_size=512)
    model['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    model['generation_cfg'] = dict(max_new_tokens=8, stop_pattern=r'The answer is ([A-Z]).')
    cfg = f"""
default_scope = 'mma'
randomness = dict(seed=0)
model = {model!r}
tokenize = dict(type='TokenizeForLaVIN', num_visual_tokens=2, with_answer=False,
                tokenizer=dict(type='SentencePieceTokenizer', model_path={tokenizer_path!r}))
test_dataloader = dict(
    batch_size=3, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='ScienceQADataset', data_root={str(sqa_root)!r}, split='test',
                 prompt_format='QCM-ALE', test_mode=True,
                 pipeline=[dict(type='LoadLaVINImage', size=32), tokenize]))
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='ScienceQAMetric')
"""
    path.write_text(cfg)
    return model


def run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_test_tool_one_and_two_processes(tmp_path, tokenizer_path, sqa_root):
    import mma
    cfg_path = tmp_path / 'tiny_sqa.py'
    model_cfg = write_config(cfg_path, tokenizer_path, sqa_root)
    torch.manual_seed(0)
    model = randomize_adapters(mma.build_model(model_cfg), seed=5)
    ckpt = tmp_path / 'adapters.pth'
    torch.save(model.trainable_state_dict(), ckpt)

    out1 = tmp_path / 'p1.json'
    stdout = run([os.path.join(ROOT, 'tools/test.py'), str(cfg_path), str(ckpt),
                  '--work-dir', str(tmp_path / 'w1'), '--out', str(out1)], tmp_path)
    assert 'Avg' in stdout and 'G7-12' in stdout and 'unparseable' in stdout
    p1 = json.loads(out1.read_text())
    assert len(p1['predictions']) == 12
    assert [p['qid'] for p in p1['predictions']] == [str(100 + i) for i in range(12)]

    out2 = tmp_path / 'p2.json'
    run(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
         os.path.join(ROOT, 'tools/test.py'), str(cfg_path), str(ckpt), '--launcher', 'pytorch',
         '--work-dir', str(tmp_path / 'w2'), '--out', str(out2)], tmp_path)
    p2 = json.loads(out2.read_text())
    assert p2['predictions'] == p1['predictions']
    assert json.dumps(p2['metrics']) == json.dumps(p1['metrics'])

    # the checkpoint is checked strictly: a missing adapter key is an error
    sd = torch.load(ckpt)
    sd.pop(next(iter(sd)))
    torch.save(sd, tmp_path / 'bad.pth')
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools/test.py'), str(cfg_path),
                           str(tmp_path / 'bad.pth'), '--work-dir', str(tmp_path / 'w3')],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and '1 missing adapter tensors' in proc.stderr


def test_test_tool_never_overwrites_predictions_silently(tmp_path, tokenizer_path, sqa_root):
    import mma
    cfg_path = tmp_path / 'tiny_sqa.py'
    model_cfg = write_config(cfg_path, tokenizer_path, sqa_root)
    torch.save(mma.build_model(model_cfg).trainable_state_dict(), tmp_path / 'a.pth')
    out = tmp_path / 'preds.json'
    out.write_text('{"earlier": "results"}')
    args = [os.path.join(ROOT, 'tools/test.py'), str(cfg_path), str(tmp_path / 'a.pth'),
            '--work-dir', str(tmp_path / 'w'), '--out', str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert f'predictions file {out} already exists' in proc.stderr and '--overwrite' in proc.stderr
    assert json.loads(out.read_text()) == {'earlier': 'results'}  # untouched
    run(args + ['--overwrite'], tmp_path)
    assert len(json.loads(out.read_text())['predictions']) == 12
