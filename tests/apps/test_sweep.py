"""tools/sweep.py and mma.apps.sweep: grid expansion, changed keys, commands, the skip of finished runs,
the table and the chart; one cheap end-to-end sweep (tiny demo configs, fixture data, 1 epoch)."""
import csv
import importlib.util
import io
import json
import math
import os
import shlex
from contextlib import redirect_stdout

import pytest
import torch

import mma
from mma.apps.sweep import (Launch, Run, commands, config_changes, execute, expand_grid, load_result,
                       markdown, parse_grid, plan_runs, split_values, table, write_report)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, 'configs', 'tiny', 'lavin_tiny_sqa.py')
ABL = os.path.join(REPO, 'configs', 'ablations')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _sweep_main(argv):
    spec = importlib.util.spec_from_file_location('mma_tools_sweep',
                                                  os.path.join(REPO, 'tools', 'sweep.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = io.StringIO()
    with redirect_stdout(out):
        mod.main(argv)
    return out.getvalue()


# ------------------------------------------------------------------------------------ plan --
def test_split_values_respects_brackets_and_quotes():
    assert split_values('4,8,16') == ['4', '8', '16']
    assert split_values('[1,2],(3,4),"a,b"') == ['[1,2]', '(3,4)', '"a,b"']
    with pytest.raises(ValueError):
        split_values('4,,8')


def test_grid_expansion_is_a_cartesian_product_with_tied_keys():
    axes = parse_grid(['a.x=1,2', 'b.y+c.y=p,q,r'])
    assert axes == [(['a.x'], ['1', '2']), (['b.y', 'c.y'], ['p', 'q', 'r'])]
    points = expand_grid(axes)
    assert len(points) == 6
    assert points[0] == ['a.x=1', 'b.y=p', 'c.y=p']
    assert points[-1] == ['a.x=2', 'b.y=r', 'c.y=r']
    assert expand_grid([]) == [[]]
    with pytest.raises(ValueError):
        parse_grid(['no_values'])
    with pytest.raises(ValueError):
        parse_grid(['a=1', 'a=2'])


def test_plan_runs_names_and_options(tmp_path):
    runs = plan_runs([TINY], ['model.llm_adapter.hidden_dim+model.vit_adapter.hidden_dim=4,16',
                              'train_cfg.max_epochs=1,2'], str(tmp_path))
    assert [r.name for r in runs] == [
        'lavin_tiny_sqa_hidden_dim-4_max_epochs-1', 'lavin_tiny_sqa_hidden_dim-4_max_epochs-2',
        'lavin_tiny_sqa_hidden_dim-16_max_epochs-1', 'lavin_tiny_sqa_hidden_dim-16_max_epochs-2']
    assert runs[2].options == ['model.llm_adapter.hidden_dim=16',
                               'model.vit_adapter.hidden_dim=16', 'train_cfg.max_epochs=1']
    assert runs[2].changes == runs[2].options  # a preset changes nothing itself
    assert runs[0].work_dir == os.path.join(str(tmp_path), runs[0].name)
    # a glob, and the same stem twice
    other = tmp_path / 'x' / 'lavin_tiny_sqa.py'
    other.parent.mkdir()
    other.write_text(f'_base_ = [{TINY!r}]\n')
    runs = plan_runs([TINY, str(tmp_path / 'x' / '*.py')], [], str(tmp_path))
    assert [r.name for r in runs] == ['lavin_tiny_sqa', 'lavin_tiny_sqa-2']
    with pytest.raises(FileNotFoundError):
        plan_runs([str(tmp_path / 'none_*.py')], [], str(tmp_path))


def test_config_changes_against_the_preset():
    assert config_changes(os.path.join(REPO, 'configs', 'lavin_7b_sqa.py')) == []
    assert config_changes(os.path.join(ABL, 'lavin_7b_sqa_no-router.py')) == [
        'model.llm_adapter.router=<removed>', 'model.llm_adapter.type=RepAdapter',
        'model.vit_adapter.router=<removed>', 'model.vit_adapter.type=RepAdapter']
    # (the data pipeline's visual tokens follow the model: the ablation does not restate them)
    assert config_changes(os.path.join(ABL, 'lavin_7b_sqa_tokens3.py')) == [
        'model.vision.feature_every=8']
    # a config over another ablation is compared with the preset at the top
    # (a model without a vision encoder gives the data no image size: the text-only ablation
    # states the size its pipelines load the data set's images at)
    assert config_changes(os.path.join(ABL, 'lavin_13b_sqa_text-only_no-router.py')) == [
        'model.llm_adapter.router=<removed>', 'model.llm_adapter.type=RepAdapter',
        'model.vision=None', 'model.vit_adapter=None',
        'train_dataloader.dataset.pipeline.0.size=224',
        'test_dataloader.dataset.pipeline.0.size=224']


def test_commands_per_launcher(tmp_path):
    run = Run('r', 'c.py', ['model.x=1'], work_dir=str(tmp_path / 'r'))
    launch = Launch(options=['a=1'], train_args=['--amp'], python='py', tools_dir='tools')
    train, export, test = commands(run, launch)
    assert train == ['py', 'tools/train.py', 'c.py', '--work-dir', run.work_dir, '--amp',
                     '--cfg-options', 'a=1', 'model.x=1']
    assert export == ['py', 'tools/sweep.py', '--export-adapters', run.work_dir]
    assert test[:3] == ['py', 'tools/test.py', 'c.py'] and test[3].endswith('r/adapters.pth')
    assert test[-3:] == ['--cfg-options', 'a=1', 'model.x=1']
    assert '--out' in test and test[test.index('--out') + 1].endswith('r/predictions.json')
    launch.launcher, launch.gpus = 'torchrun', 8
    train, _, test = commands(run, launch)
    assert train[:2] == ['torchrun', '--nproc_per_node=8'] and train[-2:] == ['--launcher',
                                                                             'pytorch']
    assert test[:2] == ['torchrun', '--nproc_per_node=8']
    launch.launcher, launch.partition = 'slurm', 'gpu'
    train, _, test = commands(run, launch)
    assert train[:3] == ['srun', '-p', 'gpu'] and '--gres=gpu:8' in train and '--ntasks=8' in train
    assert train[-2:] == ['--launcher', 'slurm'] and '--ntasks=1' in test
    os.makedirs(run.work_dir)
    (tmp_path / 'r' / 'last_checkpoint').write_text('x')
    assert '--resume' in commands(run, Launch())[0]  # an interrupted run resumes


# ------------------------------------------------------------------------- execute / skip --
def _fake_runner(calls, fail=()):
    def runner(run, launch):
        calls.append(run.name)
        if run.name in fail:
            raise RuntimeError('train failed')
        log = os.path.join(run.work_dir, '20250101_000000', 'vis_data')
        os.makedirs(log, exist_ok=True)
        with open(os.path.join(log, 'scalars.json'), 'w') as f:
            for step, loss in enumerate((3.0, 2.5, 1.25 + len(calls))):
                f.write(json.dumps(dict(loss=loss, lr=0.1, step=step)) + '\n')
            f.write(json.dumps(dict(lr=0.1, step=9)) + '\n')  # no loss on this line
        with open(os.path.join(run.work_dir, 'predictions.json'), 'w') as f:
            json.dump(dict(metrics={'Avg': 50.0 + len(calls), 'count': 12}, predictions=[]), f)
    return runner


def test_execute_skips_finished_runs(tmp_path):
    runs = plan_runs([TINY], ['model.llm_adapter.hidden_dim=4,16,32'], str(tmp_path))
    calls = []
    rows = execute(runs, Launch(), runner=_fake_runner(calls, fail={runs[2].name}),
                   log=lambda s: None)
    assert calls == [r.name for r in runs]
    assert [r['status'] for r in rows] == ['done', 'done', 'failed']
    assert [r['final_loss'] for r in rows[:2]] == [2.25, 3.25]  # the last logged loss
    assert [r['metrics']['Avg'] for r in rows[:2]] == [51.0, 52.0]
    for run, row in zip(runs, rows[:2]):
        with torch.device('meta'):
            model = mma.build_model(TINY, llm_adapter=dict(
                hidden_dim=int(run.options[0].split('=')[1])))
        assert row['trainable_params'] == sum(p.numel() for p in model.parameters()
                                              if p.requires_grad)
    assert rows[0]['trainable_params'] < rows[1]['trainable_params']
    assert all(os.path.isfile(os.path.join(r.work_dir, 'result.json')) for r in runs[:2])

    # the rerun executes only the failed run, and reads the others back unchanged
    calls.clear()
    rerun = execute(runs, Launch(), runner=_fake_runner(calls), log=lambda s: None)
    assert calls == [runs[2].name]
    assert rerun[:2] == rows[:2]
    assert rerun[2]['status'] == 'done'

    # a run finished elsewhere (predictions, no result.json) is collected, not re-run
    os.remove(os.path.join(runs[0].work_dir, 'result.json'))
    row = load_result(runs[0])
    assert row['status'] == 'done' and row['metrics']['Avg'] == 51.0
    assert row['wall_time_s'] > 0  # from the log folder's timestamp to the predictions file
    calls.clear()
    execute(runs, Launch(), runner=_fake_runner(calls), log=lambda s: None)
    assert calls == []


# ---------------------------------------------------------------------------------- report --
ROWS = [
    dict(run='a', config='c/a.py', changes=[], status='done', trainable_params=19420,
         final_loss=1.5, metrics={'Avg': 80.0, 'IMG': 75.5, 'count': 12}, wall_time_s=12.3),
    dict(run='b', config='c/b.py', changes=['model.vision=None', 'x.y=1|2'], status='done',
         trainable_params=10536, final_loss=2.25,
         metrics={'Avg': 60.0, 'IMG': float('nan'), 'TXT': 70.0, 'count': 12}, wall_time_s=9.0),
    dict(run='c', config='c/c.py', changes=[], status='failed'),
]


def test_table_csv_and_markdown(tmp_path):
    flat = table(ROWS)
    assert list(flat[0]) == ['run', 'config', 'changes', 'trainable_params', 'final_loss', 'Avg',
                             'IMG', 'count', 'TXT', 'wall_time_s', 'status']
    assert flat[1]['changes'] == 'model.vision=None; x.y=1|2' and flat[0]['TXT'] is None
    paths = write_report(ROWS, str(tmp_path), metric='Avg')
    with open(paths['csv']) as f:
        rows = list(csv.DictReader(f))
    assert [r['run'] for r in rows] == ['a', 'b', 'c']
    assert rows[0]['trainable_params'] == '19420' and rows[1]['final_loss'] == '2.25'
    assert rows[0]['Avg'] == '80.0' and rows[1]['IMG'] == 'nan' and rows[0]['TXT'] == ''
    assert rows[2]['status'] == 'failed' and rows[2]['Avg'] == ''
    md = open(paths['md']).read().splitlines()
    assert md[0] == ('| run | config | changes | trainable_params | final_loss | Avg | IMG | '
                     'count | TXT | wall_time_s | status |')
    assert md[2] == '| a | c/a.py |  | 19,420 | 1.5000 | 80.00 | 75.50 | 12 |  | 12 | done |'
    assert md[3].startswith('| b | c/b.py | model.vision=None; x.y=1\\|2 | 10,536 | 2.2500 | '
                            '60.00 | nan | 12 | 70.00 |')
    assert markdown(ROWS) == '\n'.join(md) + '\n'
    png = open(paths['png'], 'rb').read()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    assert write_report(ROWS, str(tmp_path), metric='nothing')['png'] is None


# ----------------------------------------------------------------------------- end to end --
@pytest.mark.slow
def test_sweep_end_to_end_tiny(tmp_path):
    from mma.toy import make_tiny_scienceqa
    sqa = make_tiny_scienceqa(str(tmp_path / 'sqa'))
    tok, root = sqa['tokenizer'], sqa['data_root']
    common = ['model.llm.checkpoint=None', 'model.vision.pretrained=None',
              f'model.tokenizer.model_path={tok}', 'model.generation_cfg.max_new_tokens=8',
              f'train_dataloader.dataset.data_root={root}',
              f'test_dataloader.dataset.data_root={root}',
              'train_cfg.max_epochs=1']
    cfgs = [os.path.join(REPO, 'configs', 'lavin_tiny_demo.py'),
            os.path.join(ABL, 'tiny', 'lavin_tiny_demo_no-router.py')]
    sweep = str(tmp_path / 'sweep')
    argv = cfgs + ['--work-dir', sweep, '--cfg-options'] + common
    out = _sweep_main(argv)
    with open(os.path.join(sweep, 'results.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [r['run'] for r in rows] == ['lavin_tiny_demo', 'lavin_tiny_demo_no-router']
    assert [r['status'] for r in rows] == ['done', 'done']
    assert [int(r['trainable_params']) for r in rows] == [19_420, 14_928]
    assert rows[1]['changes'].startswith('model.llm_adapter.router=<removed>')
    for r in rows:
        wd = os.path.join(sweep, r['run'])
        scalars = [json.loads(line) for d in os.listdir(wd) if d.startswith('20')
                   for line in open(os.path.join(wd, d, 'vis_data', 'scalars.json'))]
        assert float(r['final_loss']) == pytest.approx([s['loss'] for s in scalars
                                                        if 'loss' in s][-1])
        assert 0 < float(r['final_loss']) < 20 and float(r['wall_time_s']) > 0
        preds = json.load(open(os.path.join(wd, 'predictions.json')))['metrics']
        assert int(r['count']) == preds['count'] == 12
        for col in ('Avg', 'NAT', 'SOC', 'TXT', 'IMG', 'NO', 'G1-6', 'G7-12'):
            assert math.isclose(float(r[col]), preds[col], abs_tol=1e-9) or (
                math.isnan(float(r[col])) and math.isnan(preds[col]))
    md = open(os.path.join(sweep, 'results.md')).read()
    assert md in out and md.count('\n') == 4 and '| 19,420 |' in md
    png = open(os.path.join(sweep, 'results.png'), 'rb').read()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000

    # rerun: nothing is executed again
    logs = {r['run']: os.path.getmtime(os.path.join(sweep, r['run'], 'train.log')) for r in rows}
    out = _sweep_main(argv)
    assert out.count('finished before, skipped') == 2 and 'running' not in out
    assert logs == {r: os.path.getmtime(os.path.join(sweep, r, 'train.log')) for r in logs}
    assert open(os.path.join(sweep, 'results.md')).read() == md

    # printed commands: only for the unfinished run, one shell line each
    extra = os.path.join(ABL, 'tiny', 'lavin_tiny_demo_ffn.py')
    out = _sweep_main(cfgs + [extra, '--work-dir', sweep, '--launcher', 'torchrun', '--gpus',
                              '2', '--cfg-options'] + common)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'lavin_tiny_demo_ffn' in lines[0]
    argv0 = shlex.split(lines[0].split(' && ')[0])
    assert argv0[:2] == ['torchrun', '--nproc_per_node=2']
    assert os.path.samefile(argv0[2], os.path.join(REPO, 'tools', 'train.py'))
    assert open(os.path.join(sweep, 'commands.sh')).read() == lines[0] + '\n'
