"""Atomic checkpoints: a kill or a full disk while saving never loses the previous checkpoint.

mmengine's ``CheckpointHook`` (0.10.x) deletes the oldest kept checkpoint *before* writing the new
one, writes the new file in place (``open(path, 'wb')``), and then rewrites the ``last_checkpoint``
pointer in place. A kill or ``ENOSPC`` in between leaves a truncated ``epoch_N.pth``, possibly no
older checkpoint (``max_keep_ckpts=1``), or an empty pointer, and ``--resume`` fails.

:class:`AtomicCheckpointHook` keeps mmengine's behaviour and options but orders the steps so that
every state on disk is resumable:

1. the Runner (or the FlexibleRunner's strategy) writes the checkpoint under a temporary name in
   the same directory (``.tmp-epoch_N.pth``);
2. the main process fsyncs it and renames it over ``epoch_N.pth`` (``os.replace`` is atomic
   within one file system), then fsyncs the directory;
3. ``last_checkpoint`` is rewritten the same way (temporary file, fsync, rename), so it only ever
   names a complete checkpoint;
4. only then are checkpoints beyond ``max_keep_ckpts`` deleted.

A failed save removes its temporary file and re-raises; leftovers of a killed save are removed
when training starts. The message hub is stored as plain data, so that the file loads with
``torch.load(weights_only=True)`` (:func:`mma.checkpoint_file.plain_message_hub`). Non-local
``out_dir`` back ends (e.g. ``s3://``) fall back to mmengine's
behaviour.
"""
import os
import os.path as osp
import shutil
from typing import Union

from mmengine.dist import barrier, is_distributed, is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from mma.registry import HOOKS

from mma.checkpoint_file import plain_message_hub

TMP_PREFIX = '.tmp-'


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    """fsync a file, or every file and directory below ``path``."""
    if osp.isdir(path):
        for root, _, files in os.walk(path):
            for name in files:
                _fsync_path(osp.join(root, name))
            _fsync_path(root)
    else:
        _fsync_path(path)


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif osp.lexists(path):
        os.remove(path)


def commit(tmp: str, dst: str) -> None:
    """Make the complete file (or directory) ``tmp`` durable and rename it to ``dst``.

    Both must be in the same directory. A file replaces ``dst`` atomically; a directory (DeepSpeed
    and sharded-FSDP checkpoints) replaces an existing ``dst`` directory in two renames.
    """
    _fsync_tree(tmp)
    if osp.isdir(tmp) and osp.isdir(dst):
        old = osp.join(osp.dirname(dst), TMP_PREFIX + 'old-' + osp.basename(dst))
        _remove(old)
        os.replace(dst, old)
        os.replace(tmp, dst)
        _remove(old)
    else:
        os.replace(tmp, dst)
    _fsync_path(osp.dirname(osp.abspath(dst)))


def atomic_write(data: Union[bytes, str], path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old or its new content."""
    tmp = osp.join(osp.dirname(osp.abspath(path)), TMP_PREFIX + osp.basename(path))
    try:
        with open(tmp, 'wb') as f:
            f.write(data.encode() if isinstance(data, str) else data)
        commit(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic saves (see the module docstring).

    Takes the same arguments (``interval``, ``by_epoch``, ``max_keep_ckpts``, ``save_last``,
    ...); ``configs/_base_/default_runtime.py`` uses it as the ``checkpoint`` default hook.
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # mmengine pickles HistoryBuffer objects: store them as plain data so that the file
        # loads with torch.load(weights_only=True) (mma.checkpoint_file)
        plain_message_hub(checkpoint)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._atomic = isinstance(self.file_backend, LocalBackend)
        if self._atomic and is_main_process() and osp.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):  # leftovers of a killed save
                if name.startswith(TMP_PREFIX):
                    _remove(osp.join(self.out_dir, name))

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not getattr(self, '_atomic', False):
            return super()._save_checkpoint_with_step(runner, step, meta)
        expired = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        tmp = osp.join(self.out_dir, TMP_PREFIX + filename)
        try:
            runner.save_checkpoint(self.out_dir, TMP_PREFIX + filename, self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                                   by_epoch=self.by_epoch, backend_args=self.backend_args,
                                   **self.args)
            if is_distributed():  # strategies may write parts of the checkpoint on every rank
                barrier()
            if is_main_process():
                self.commit(tmp, self.last_ckpt)
        except BaseException:
            if is_main_process():
                _remove(tmp)
            raise
        if not is_main_process():
            return
        atomic_write(self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        if expired is not None:
            _remove(osp.join(self.out_dir, self.filename_tmpl.format(expired)))

    def commit(self, tmp: str, dst: str) -> None:
        """Rename the written temporary checkpoint into place (a seam for fault-injection tests)."""
        commit(tmp, dst)
