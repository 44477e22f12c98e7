"""The packing benchmark runs the padded and the packed step on the same samples (no timing
asserted: the figures are printed by tools/benchmark.py --what pack)."""
import pytest

from mma.apps.benchmark_packing import run_packing_benchmark, scienceqa_like_lengths


def test_packed_and_padded_steps_agree_and_packing_removes_padding():
    lengths = scienceqa_like_lengths(200, 500)
    assert 32 <= int(lengths.min()) and int(lengths.max()) <= 500
    assert 90 < float(lengths.float().median()) < 130  # the documented median of ~110
    res = run_packing_benchmark('tiny', batch_size=6, max_tokens=128, steps=1, warmup=0,
                                mask='dense')
    pad, pk = res['padded'], res['packed']
    assert pk['loss'] == pytest.approx(pad['loss'], abs=1e-5)
    assert pk['rows'] < pad['rows'] and pk['padded_fraction'] < pad['padded_fraction']
