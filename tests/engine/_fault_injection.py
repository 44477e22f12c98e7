"""Test-only fault injection, imported by a training process through ``custom_imports``.

``MMA_TEST_FAULT`` picks where the process stops (then sleeps until the test kills it):
``iter:N`` after the N-th training iteration (its optimiser step done, nothing saved),
``save:NAME`` inside the save of checkpoint NAME, with its temporary file half written.
The process creates the file ``MMA_TEST_FAULT_READY`` when it has stopped there.
"""
import os
import time

from mmengine.hooks import Hook

from mma.engine import AtomicCheckpointHook
from mma.registry import HOOKS


def _stop_here() -> None:
    open(os.environ['MMA_TEST_FAULT_READY'], 'w').close()
    while True:
        time.sleep(1)


@HOOKS.register_module()
class StopAtIterHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if os.environ.get('MMA_TEST_FAULT') == f'iter:{runner.iter + 1}':
            _stop_here()


@HOOKS.register_module()
class StopInSaveCheckpointHook(AtomicCheckpointHook):

    def commit(self, tmp: str, dst: str) -> None:
        if os.environ.get('MMA_TEST_FAULT') == f'save:{os.path.basename(dst)}':
            with open(tmp, 'r+b') as f:  # as if the kill came in the middle of the write
                f.truncate(os.path.getsize(tmp) // 2)
            _stop_here()
        super().commit(tmp, dst)
