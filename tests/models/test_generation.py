"""Cached generation equals the training forward; batches equal solo runs; stops are per sample."""
import pytest
import torch

from mma.datasets import TokenizeForLaVIN, mma_collate
from mma.models.generation import GenerationConfig, generate, left_align, prefill
from mma.models.masks import modality_mask
from mma.routers.routing import RoutingContext

PROMPTS = [('Question: what color is the sky\nResponse:', True),
           ('Question: which animal can fly\nContext: N/A\nOptions: (A) cat (B) dog\nResponse:',
            False),
           ('a cat', True),
           ('the dog sits on the mat and the sun is red\nResponse:', False)]


def batch(tokenizer, prompts, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokenize = TokenizeForLaVIN(tokenizer, max_len=None, with_answer=False)
    items = [tokenize(dict(prompt=p, img_path='x.png' if img else None, qid=i,
                           image=torch.randn(3, 32, 32, generator=g) if img else None))
             for i, (p, img) in enumerate(prompts)]
    return mma_collate(items)['inputs']


def full_forward_greedy(model, inputs, n):
    """Reference: append the argmax token and rerun the whole training forward each step."""
    ids = inputs['input_ids'][:, :int(inputs['lengths'][0])]
    toks, logits = [], []
    for _ in range(n):
        out = model(dict(inputs, input_ids=ids, lengths=None, labels=None), mode='tensor')  # (1, T, V)
        logits.append(out[0, -1].float())
        toks.append(int(out[0, -1].argmax()))
        ids = torch.cat([ids, torch.tensor([[toks[-1]]])], dim=1)
    return toks, logits


@pytest.mark.parametrize('which', [0, 1])  # an image prompt and a text-only prompt
def test_cached_greedy_equals_full_forward(tiny_model, tokenizer, which):
    inputs = batch(tokenizer, [PROMPTS[which]])
    out = tiny_model.generate(inputs, max_new_tokens=12, stop_at_eos=False, return_logits=True)
    ref_toks, ref_logits = full_forward_greedy(tiny_model, inputs, 12)
    assert out.tokens[0] == ref_toks
    for a, b in zip(out.logits, ref_logits):
        assert (a[0] - b).abs().max() <= 1e-5


def test_mixed_length_batch_equals_solo(tiny_model, tokenizer):
    inputs = batch(tokenizer, PROMPTS)
    both = tiny_model.generate(inputs, max_new_tokens=10, stop_at_eos=False, return_logits=True)
    assert len(set(inputs['lengths'].tolist())) == len(PROMPTS)
    g = torch.Generator().manual_seed(0)
    for i, p in enumerate(PROMPTS):
        solo_inputs = batch(tokenizer, [p])
        img = torch.randn(3, 32, 32, generator=g) if p[1] else None  # same image draws as batch()
        if img is not None:
            solo_inputs['images'] = img[None]
        solo = tiny_model.generate(solo_inputs, max_new_tokens=10, stop_at_eos=False,
                                   return_logits=True)
        assert solo.tokens[0] == both.tokens[i], i
        assert max((a[0] - b[i]).abs().max() for a, b in zip(solo.logits, both.logits)) <= 1e-5


def test_routing_weights_live_with_cache_and_match_full_forward(tiny_model, tokenizer):
    inputs = batch(tokenizer, PROMPTS)
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1))
             for n, m in tiny_model.llm.named_modules() if n.endswith('router')]
    out = tiny_model.generate(inputs, max_new_tokens=6, stop_at_eos=False)
    for h in hooks:
        h.remove()
    n_llm_routers = len(hooks)
    assert n_llm_routers == 2 and len(calls) == n_llm_routers  # computed at prefill only
    routed = [m for m in tiny_model.llm.modules() if hasattr(m, 'router')]
    assert set(out.routing) == set(routed)
    # the full (training) forward's weights, sample by sample
    for i in range(len(PROMPTS)):
        ctx = RoutingContext(token_index=torch.zeros(1, dtype=torch.long), cache={})
        solo = batch(tokenizer, [PROMPTS[i]])
        seq = tiny_model.assemble(solo['input_ids'], solo['has_image'], solo['visual_pos'],
                                  solo['images'])
        with torch.no_grad():
            tiny_model.hidden_states(seq['embeds'], ctx)
        for m in routed:
            torch.testing.assert_close(out.routing[m][i], ctx.cache[m][0], atol=1e-6,
                                       rtol=0)
    # the two modalities route differently
    m = routed[0]
    assert not torch.allclose(out.routing[m][0], out.routing[m][1])
    assert not any(hasattr(m, 'weights') for m in routed)  # nothing left on modules


def test_stop_strings_and_eos_per_sample(tiny_model, tokenizer):
    inputs = batch(tokenizer, PROMPTS)
    free = tiny_model.generate(inputs, max_new_tokens=16, stop_at_eos=False)
    # stop sample 0 at a piece of its own free-running text; the others are unaffected
    text0 = free.texts[0]
    assert len(text0) > 6
    stop = text0[3:6]
    out = tiny_model.generate(inputs, max_new_tokens=16, stop_at_eos=False, stop_strings=[stop])
    assert out.texts[0] == text0[:text0.find(stop)]
    assert out.num_generated[0] < 16
    for i in range(1, len(PROMPTS)):
        if stop not in free.texts[i]:
            assert out.texts[i] == free.texts[i] and out.num_generated[i] == 16
    # EOS: make token 2 the argmax of one sample at step 3 by using its free-run token as "eos"
    eos_like = free.tokens[1][3]
    tiny_model.tokenizer.eos_id, saved = eos_like, tiny_model.tokenizer.eos_id
    try:
        out = tiny_model.generate(inputs, max_new_tokens=16, stop_at_eos=True)
    finally:
        tiny_model.tokenizer.eos_id = saved
    first = free.tokens[1].index(eos_like)
    assert out.tokens[1] == free.tokens[1][:first] and out.num_generated[1] == first + 1
    for i in (0, 2, 3):
        if eos_like not in free.tokens[i]:
            assert out.tokens[i] == free.tokens[i]


def test_sampling_is_seeded(tiny_model, tokenizer):
    inputs = batch(tokenizer, PROMPTS[:2])
    a = tiny_model.generate(inputs, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3,
                            stop_at_eos=False)
    b = tiny_model.generate(inputs, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3,
                            stop_at_eos=False)
    c = tiny_model.generate(inputs, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=4,
                            stop_at_eos=False)
    assert a.tokens == b.tokens and a.tokens != c.tokens
    # top_p -> 0 keeps only the most likely token: sampling becomes greedy
    greedy = tiny_model.generate(inputs, max_new_tokens=8, stop_at_eos=False)
    nucleus = tiny_model.generate(inputs, max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=1,
                                  stop_at_eos=False)
    assert nucleus.tokens == greedy.tokens


def test_left_align_and_mask():
    e = torch.arange(2 * 4, dtype=torch.float).view(2, 4, 1)
    out, pad = left_align(e, torch.tensor([4, 2]))
    assert pad.tolist() == [0, 2]
    assert out[1, 2:, 0].tolist() == [4.0, 5.0]
    m = modality_mask(pad, 0, 4, 4)[1, 0]
    assert m[3].tolist() == [False, False, False, True]  # never attends the modality token (col 2)
    assert m[2].tolist() == [False, False, True, False]
    assert m[0].tolist() == [True, False, False, False]  # padding attends itself only
