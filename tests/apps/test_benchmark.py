import os

import pytest
import torch

import mma
from mma.apps.benchmark import build, make_batch, mma_loss, reference_loss, run_train_benchmark, sizes
from mma.apps.benchmark_inference import run_decode_benchmark
from mma.apps.benchmark_reference import reference_code_loss

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_reference_style_and_mma_losses_agree():
    torch.backends.mha.set_fastpath_enabled(False)
    size = sizes()['tiny']
    model = build(size).eval()
    with torch.no_grad():  # non-zero adapters so that every path matters
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.2)
    batch = make_batch(size, vocab=model.llm.args.vocab_size)
    ref = reference_loss(model, batch, size.max_seq_len)
    new = mma_loss(model, batch)
    torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('placement', ['attn', 'block'])
def test_reference_code_port_matches_mma_loss_and_gradients(placement):
    """The port of the reference code's computation (its kernels: sequence-first CLIP attention,
    Conv1d adapters, complex RoPE, per-sample insertion) gives mma's loss and adapter gradients."""
    torch.backends.mha.set_fastpath_enabled(False)
    size = sizes()['tiny']
    torch.manual_seed(0)
    model = mma.build_model(dict(size.model, llm_adapter_placement=placement,
                                 vit_adapter_placement=placement)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.2)
    batch = make_batch(size, vocab=model.llm.args.vocab_size)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for fn in (reference_code_loss, lambda m, b, n: mma_loss(m, b)):
        loss = fn(model, batch, size.max_seq_len)
        grads.append((loss.detach(), torch.autograd.grad(loss, params)))
    (ref_loss, ref_grads), (new_loss, new_grads) = grads
    torch.testing.assert_close(new_loss, ref_loss, rtol=1e-5, atol=1e-5)
    vit_grad = sum(g.abs().sum() for (n, _), g in zip(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad], new_grads)
        if n.startswith('vision.'))
    assert vit_grad > 0  # the ViT adapters are on the path being compared
    for g_ref, g_new in zip(ref_grads, new_grads):
        torch.testing.assert_close(g_new, g_ref, rtol=1e-4, atol=1e-6)


def test_reference_modes_do_the_reference_work():
    """Both reference modes compute every position up to max_seq_len and run the ViT on one image
    per sample (a zero image for text-only samples), as the original code does; mma mode pads to
    the longest sample and encodes the real images only. Equal losses alone would not show this:
    padding and zero images do not change the loss."""
    size = sizes()['tiny']
    model = build(size).eval()
    batch = make_batch(size, batch_size=4, n_images=2, vocab=model.llm.args.vocab_size)
    longest = 1 + batch['input_ids'].shape[1] + model.num_visual_tokens
    assert longest < size.max_seq_len
    seen = {}

    def record(name):
        return lambda mod, args: seen.setdefault(name, args[0].detach().clone())

    hooks = [model.vision.tower.conv1.register_forward_pre_hook(record('images')),
             model.llm.layers[0].attention.wq.register_forward_pre_hook(record('positions'))]
    try:
        for name, fn in (('reference', reference_loss), ('reference-code', reference_code_loss),
                         ('mma', lambda m, b, n: mma_loss(m, b))):
            seen.clear()
            with torch.no_grad():
                fn(model, batch, size.max_seq_len)
            images, positions = seen['images'], seen['positions'].shape[:2]
            if name == 'mma':
                assert positions == (4, longest)
                torch.testing.assert_close(images, batch['images'])
                continue
            assert positions == (4, size.max_seq_len), name
            assert images.shape[0] == 4, name  # every sample through the ViT ...
            torch.testing.assert_close(images[:2], batch['images'])
            assert not images[2:].any(), name  # ... text-only ones as a zero image
    finally:
        for h in hooks:
            h.remove()


def test_train_benchmark_reports_every_mode():
    res = run_train_benchmark('tiny', steps=1, warmup=0)
    assert set(res) == {'reference-code', 'reference', 'mma'}
    assert abs(res['reference']['loss'] - res['mma']['loss']) < 1e-4
    assert abs(res['reference-code']['loss'] - res['mma']['loss']) < 1e-4
    # reference pads to max_seq_len, mma to the longest sample
    assert res['reference']['padded_fraction'] > res['mma']['padded_fraction']


def test_reference_style_decoding_gives_the_cached_greedy_tokens(tiny_model, tokenizer, sqa_root):
    """The reference-style evaluation decoder (whole ViT batch, eager attention, shortest-prompt
    prefill, one position per step, no early stop) and mma's cached generation agree token for
    token over the first 16 new tokens of each question."""
    from mma.apps.benchmark_inference import reference_generate
    from mma.datasets import ScienceQADataset, mma_collate
    ds = ScienceQADataset(str(sqa_root), split='test', prompt_format='QCM-ALE', test_mode=True,
                          pipeline=[dict(type='LoadLaVINImage', size=32),
                                    dict(type='TokenizeForLaVIN', tokenizer=tokenizer,
                                         num_visual_tokens=2, with_answer=False)])
    batch = mma_collate([ds[i] for i in range(6)])['inputs']
    assert 0 < int(batch['has_image'].sum()) < 6 and len(set(batch['lengths'].tolist())) > 1
    tiny_model.generation_cfg = dict(max_new_tokens=16, stop_at_eos=False)
    ours = tiny_model.generate(batch).tokens
    ref = reference_generate(tiny_model, batch, max_gen_len=16)
    for i, toks in enumerate(ours):
        assert len(toks) == 16 and len(ref['tokens'][i]) >= 16
        assert ref['tokens'][i][:16] == list(toks), f'question {i}'


def test_decode_benchmark_compares_equivalent_models():
    res = run_decode_benchmark('tiny', prompt_len=8, new_tokens=6, repeats=1)
    assert all(res[k] > 0 for k in ('bare', 'unmerged', 'merged'))
    # merged adapters give the unmerged model's logits; the bare LLaMA (no adapters) does not
    assert res['merged_max_logit_diff'] < 1e-4 < 1e-2 < res['bare_max_logit_diff']


def test_eval_benchmark_runs_both_decoders(tmp_path, monkeypatch):
    from mma.apps.benchmark_inference import run_eval_benchmark
    from mma.toy import make_tiny_scienceqa
    config = os.path.join(REPO_ROOT, 'configs', 'tiny', 'lavin_tiny_sqa.py')
    monkeypatch.chdir(tmp_path)
    make_tiny_scienceqa('work_dirs/tiny_sqa')
    res = run_eval_benchmark(config, None, n_questions=8, batch_size=4)
    assert res['questions'] == 8
    assert res['reference_tokens_per_question'] >= 64  # no early stop: 64 after the longest prompt
    assert res['mma_tokens_per_question'] <= 64
    assert res['reference_seconds'] > 0 and res['mma_seconds'] > 0


def test_benchmark_presets_name_real_options():
    """Every option a preset of tools/benchmark.py sets exists (a typo would be silently
    ignored by setattr), and its value parses as that option."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'benchmark_cli', os.path.join(REPO_ROOT, 'tools', 'benchmark.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    parser = cli.build_parser()
    actions = {a.dest: a for a in parser._actions}
    for name, preset in cli.PRESETS.items():
        for key, value in preset.items():
            assert key in actions, f'preset {name}: unknown option {key}'
            choices = actions[key].choices
            assert choices is None or value in choices, f'preset {name}: {key}={value!r}'
        for mode in preset.get('modes', 'mma').split(','):
            assert mode in ('reference-code', 'reference', 'mma'), f'preset {name}: {mode}'
