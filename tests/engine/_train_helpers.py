"""Shared helpers for the training tests: fixture data, tiny configs, running tools/train.py."""
import importlib.util
import os
import subprocess
import sys
import uuid

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
TINY_CFG = os.path.join(REPO, 'configs', 'tiny', 'lavin_tiny_sqa.py')


def data_options(sqa: dict) -> list:
    return [f"{dl}.dataset.data_root={sqa['data_root']}"
            for dl in ('train_dataloader', 'test_dataloader')] + [
        f"model.tokenizer.model_path={sqa['tokenizer']}"]  # the pipelines take the model's


def train_in_process(argv: list) -> None:
    """Run ``tools/train.py`` main() in this process (no import overhead)."""
    spec = importlib.util.spec_from_file_location('mma_tools_train', os.path.join(REPO, 'tools',
                                                                                'train.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = list(argv)
    i = argv.index('--cfg-options')
    argv.insert(i + 1, f'experiment_name=t{uuid.uuid4().hex[:12]}')
    mod.main(argv)


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    return e


def run(cmd: list, timeout: int = 240) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}'
                             f'\n{res.stderr[-5000:]}')
    return res


def torchrun(nproc: int, args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    # --standalone: torchrun's own rendezvous on a port it picks (no race for a free port)
    return run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                f'--nproc_per_node={nproc}', os.path.join(REPO, 'tools', 'train.py')] + args +
               ['--launcher', 'pytorch'], timeout)


def load_state(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']
