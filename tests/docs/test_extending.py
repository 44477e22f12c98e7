"""docs/extending.md's worked examples, run as written: an adapter (plugin + config + check, then
training) and an LLM backbone (plugin + config + check: KV-cache generation, merging)."""
import json
import os
import re
import subprocess
import sys

import torch


from mma.toy import make_tiny_scienceqa

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DOC = os.path.join(REPO, 'docs', 'extending.md')
BLOCK = re.compile(r'```python\n# file: (\S+)\n(.*?)```', re.S)


def doc_files() -> dict:
    with open(DOC) as f:
        return {path: code for path, code in BLOCK.findall(f.read())}


def test_doc_blocks_are_found():
    files = doc_files()
    assert set(files) == {'my_mma_plugins/gated_adapter.py', 'my_mma_plugins/__init__.py',
                          'configs/my_experiments/lavin_tiny_gated.py', 'check_gated.py',
                          'my_mma_plugins/tiny_gpt.py', 'configs/my_experiments/lavin_tiny_gpt.py',
                          'check_tiny_gpt.py', 'my_mma_plugins/lora_fa.py',
                          'configs/my_experiments/lavin_tiny_lora_fa.py', 'check_lora_fa.py',
                          'my_mma_plugins/color_qa.py', 'my_mma_plugins/exact_match.py',
                          'configs/my_experiments/lavin_tiny_colorqa.py', 'check_colorqa.py'}
    assert '@ADAPTERS.register_module()' in files['my_mma_plugins/gated_adapter.py']
    assert '@LLMS.register_module()' in files['my_mma_plugins/tiny_gpt.py']
    for config in ('lavin_tiny_gated.py', 'lavin_tiny_gpt.py'):
        assert 'custom_imports' in files[f'configs/my_experiments/{config}']


def scratch_project(tmp_path) -> dict:
    """A scratch project: the repository's configs next to the doc's files, and the tiny
    recipe's data set and tokenizer in ``work_dirs/tiny_sqa``."""
    os.makedirs(tmp_path / 'configs')
    for d in ('_base_', 'tiny'):
        os.symlink(os.path.join(REPO, 'configs', d), tmp_path / 'configs' / d)
    for path, code in doc_files().items():
        os.makedirs((tmp_path / path).parent, exist_ok=True)
        (tmp_path / path).write_text(code)
    return make_tiny_scienceqa(str(tmp_path / 'work_dirs' / 'tiny_sqa'))


def test_extending_example_builds_checks_and_trains(tmp_path):
    sqa = scratch_project(tmp_path)
    wd = str(tmp_path / 'work_dirs' / 'gated')
    train_argv = [os.path.join(REPO, 'tools', 'train.py'),
                  'configs/my_experiments/lavin_tiny_gated.py', '--work-dir', wd,
                  '--cfg-options', f"train_dataloader.dataset.data_root={sqa['data_root']}",
                  f"model.tokenizer.model_path={sqa['tokenizer']}",
                  'train_cfg.max_epochs=1']
    # one process: `python check_gated.py`, `python check_tiny_gpt.py`, then
    # `python tools/train.py CONFIG ...`
    driver = ('import runpy, sys; runpy.run_path("check_gated.py"); '
              'runpy.run_path("check_tiny_gpt.py"); runpy.run_path("check_lora_fa.py"); '
              f'sys.argv = {train_argv!r}; runpy.run_path(sys.argv[0], run_name="__main__")')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(['.', REPO]), HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, '-c', driver], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert 'GatedAdapter OK' in res.stdout and 'TinyGPT OK' in res.stdout
    assert 'LoRAFA OK' in res.stdout
    sd = torch.load(os.path.join(wd, 'epoch_1.pth'), map_location='cpu',
                    weights_only=False)['state_dict']
    gates = {k: v for k, v in sd.items() if k.endswith('.gate')}
    assert len(gates) == 4 and all(v.abs() > 0 for v in gates.values())  # trained from zero
    # only trainable tensors are saved: adapters (in slots or wrapped), projector, modality embedding
    assert all('.adapter' in k or k.startswith(('projector.', 'modality_embedding.')) for k in sd)


def test_new_benchmark_example_checks_and_evaluates(tmp_path, monkeypatch):
    """The benchmark of docs/extending.md section 7 (a data set file, a metric file, a config)
    runs through tools/test.py unchanged: the data follow the model and the printed accuracy is
    the exact match of the model's own answers, computed here independently."""
    from PIL import Image
    scratch_project(tmp_path)  # with the tiny recipe's tokenizer
    root = tmp_path / 'data' / 'colorqa'
    os.makedirs(root)
    rows = []
    for i, color in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
        Image.new('RGB', (40, 30), color).save(root / f'{i}.png')
        rows.append(dict(image=f'{i}.png', question=f'What color is picture {i}?', answer='?'))
    (root / 'questions.json').write_text(json.dumps(rows))

    # the model's own greedy answers, computed in this process from the doc's data set
    import mma
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mma.datasets import mma_collate
    from mma.engine import sync_data_with_model
    from mma.registry import DATASETS
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile('configs/my_experiments/lavin_tiny_colorqa.py')
    torch.manual_seed(0)
    built = mma.build_model(cfg.model)
    for p in built.trainable_modules():  # adapters that change the output
        for t in p.parameters():
            torch.nn.init.normal_(t, std=0.3)
    torch.save(built.trainable_state_dict(), tmp_path / 'adapters.pth')
    model = mma.load_model(cfg, str(tmp_path / 'adapters.pth'))
    sync_data_with_model(cfg, model)
    with DefaultScope.overwrite_default_scope('mma'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
    out = model.generate(mma_collate([dataset[i] for i in range(3)])['inputs'])
    answers = [t.strip().split('\n')[0].strip().lower() for t in out.texts]
    # the first answer is the model's, the others are not: accuracy 100 / 3
    rows[0]['answer'] = answers[0]
    rows[1]['answer'] = rows[2]['answer'] = 'no such answer'
    (root / 'questions.json').write_text(json.dumps(rows))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(['.', REPO]), HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, 'check_colorqa.py'], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0 and 'ColorQA OK' in res.stdout, res.stderr[-3000:]
    res = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'test.py'),
                          'configs/my_experiments/lavin_tiny_colorqa.py', 'adapters.pth',
                          '--work-dir', 'work_dirs/colorqa'], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(r'^exact/accuracy: 33\.3333$', res.stdout, re.M), res.stdout[-2000:]
    assert not os.path.exists(tmp_path / 'work_dirs' / 'colorqa' / 'predictions.json')
