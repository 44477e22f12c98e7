"""Ablation sweeps: plan runs (configs x a grid of ``--cfg-options``), run them here or print one
torchrun/srun command per run, skip finished runs, and report one table and a bar chart."""
from .execute import (Launch, collect, command_line, commands, execute, export_adapters,
                      final_loss, last_checkpoint, load_result, run_commands, trainable_params)
from .report import markdown, metric_names, plot, table, write_csv, write_report
from .runs import (Run, config_changes, expand_configs, expand_grid, parse_grid, plan_runs,
                   preset_of, split_values)

__all__ = [
    'Run', 'Launch', 'split_values', 'parse_grid', 'expand_grid', 'expand_configs', 'plan_runs',
    'preset_of', 'config_changes', 'commands', 'command_line', 'run_commands', 'execute',
    'export_adapters', 'last_checkpoint', 'load_result', 'collect', 'trainable_params',
    'final_loss', 'table', 'metric_names', 'markdown', 'write_csv', 'plot', 'write_report'
]
