"""The sweep's method column and merged-decoding speed (tools/sweep.py --decode-speed)."""
import math
import os

from mmengine.config import Config

from mma.apps.sweep import table
from mma.apps.sweep.speed import merged_decode_speed, method_of

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, 'configs', 'ablations', 'tiny')


def test_method_names_the_llm_adapter_and_placement():
    cfg = Config.fromfile(os.path.join(TINY, 'peft_lora-r5-qv.py'))
    assert method_of(cfg) == 'LoRA (linear:q,v)'
    assert method_of(Config.fromfile(os.path.join(REPO, 'configs', 'lavin_tiny_demo.py'))) == \
        'RoutedRepAdapter (attn)'
    assert method_of(dict(model=dict(llm_adapter=None))) == 'none'


def test_merged_decode_speed_is_a_finite_ratio():
    cfg = Config.fromfile(os.path.join(TINY, 'peft_llama-adapter-len20.py'))
    ratio = merged_decode_speed(cfg, batch_size=2, prompt_len=8, new_tokens=4, repeats=1)
    assert math.isfinite(ratio) and ratio > 0


def test_optional_columns_follow_config_and_wall_time():
    rows = [dict(run='a', config='a.py', method='LoRA (linear:q,v)', status='done',
                 metrics={'Avg': 1.0}, wall_time_s=3.0, merged_decode_speed=0.98),
            dict(run='b', config='b.py', status='failed')]
    assert list(table(rows)[0]) == ['run', 'config', 'method', 'changes', 'trainable_params',
                                    'final_loss', 'Avg', 'wall_time_s', 'merged_decode_speed',
                                    'status']
    assert table(rows)[1]['method'] is None
