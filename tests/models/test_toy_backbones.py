"""The plug-in contracts, proven with backbones mma has never seen (issue 12, point 8).

This file defines a toy GPT-2-style LLM (LayerNorm, learned absolute positions, a fused ``c_attn``,
a GELU MLP, a tied head) and a toy patch encoder, registers them in ``LLMS`` / ``ENCODERS``, and a
config imports this module through ``custom_imports``. Nothing under ``mma/`` knows them: a LaVIN
built on them (base weights read from the toys' own files) trains with mma's Runner, evaluates
with the test loop (KV-cache generation, checked against full forwards), merges per modality,
passes ``tools/train.py --check`` (preflight) and saves/reloads its trainable tensors
(``mma.load_model``, built on the meta device).
"""
import os
from typing import List, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor, nn

import mma
from mma.engine.mmengine_fixes import apply_mmengine_fixes
from mma.engine.preflight import preflight
from mma.encoders.base import VisionEncoder
from mma.llms.base import KVCache, LLMBackbone
from mma.models.merge import adapter_names, merge_lavin
from mma.registry import ENCODERS, LLMS, RUNNERS
from mma.slots import AdapterSlot, base_state_dict
from mma.toy import make_tiny_scienceqa

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def load_base_weights(module: nn.Module, slots: List[AdapterSlot], path: Optional[str]) -> None:
    """Read a ``torch.save``d state dict of ``module``'s own (non-adapter) tensors from ``path``;
    assigned when ``module`` was built on the meta device (one copy of the weights)."""
    if path is None:
        return
    sd = torch.load(path, map_location='cpu', weights_only=True)
    own = base_state_dict(module, slots)
    if set(sd) != set(own):
        raise KeyError(f'{path}: keys differ from {type(module).__name__}: missing '
                       f'{sorted(set(own) - set(sd))[:5]}, '
                       f'unexpected {sorted(set(sd) - set(own))[:5]}')
    on_meta = any(p.is_meta for p in module.parameters())
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=False,
                           assign=on_meta)


# ------------------------------------------------------------------------------ the toy LLM --
class ToyAttention(nn.Module):

    def __init__(self, dim: int, n_heads: int, layer_id: int):
        super().__init__()
        self.n_heads, self.layer_id = n_heads, layer_id
        self.c_attn = nn.Linear(dim, 3 * dim)  # fused q, k, v (GPT-2)
        self.c_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Optional[Tensor], cache: Optional[KVCache]) -> Tensor:
        b, t, d = x.shape
        q, k, v = (z.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)
                   for z in self.c_attn(x).split(d, dim=-1))  # (B, H, T, Dh)
        if cache is not None:
            if mask is None and cache.length > 0:
                raise ValueError('ToyAttention: decoding with a KV cache needs a mask')
            k, v = cache.update(self.layer_id, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.c_proj(out.transpose(1, 2).flatten(2))


class ToyMLP(nn.Module):

    def __init__(self, dim: int):
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class ToyBlock(nn.Module):
    """Pre-LN GPT-2 block with two empty adapter slots, after ``ln_1`` and after ``ln_2``."""

    def __init__(self, dim: int, n_heads: int, layer_id: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = ToyAttention(dim, n_heads, layer_id)
        self.mlp = ToyMLP(dim)
        self.register_module('adapter_attn', None)
        self.register_module('adapter_mlp', None)

    def forward(self, x: Tensor, mask, ctx, cache) -> Tensor:
        a = self.ln_1(x)
        if self.adapter_attn is not None:
            a = self.adapter_attn(a, ctx)
        x = x + self.attn(a, mask, cache)
        m = self.ln_2(x)
        if self.adapter_mlp is not None:
            m = self.adapter_mlp(m, ctx)
        return x + self.mlp(m)


@LLMS.register_module()
class ToyGPT2(LLMBackbone):
    """A GPT-2-style decoder implementing :class:`~mma.llms.base.LLMBackbone`; its weights come
    from the file ``weights`` (read by :meth:`load_pretrained`; None: random weights)."""

    def __init__(self, vocab_size: int = 512, dim: int = 32, n_layers: int = 2, n_heads: int = 2,
                 max_seq_len: int = 640, weights: Optional[str] = None):
        super().__init__()
        self.weights = weights
        self.vocab_size, self.dim, self.max_seq_len, self.num_layers = (vocab_size, dim,
                                                                        max_seq_len, n_layers)
        self.n_heads = n_heads
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(max_seq_len, dim)
        self.h = nn.ModuleList(ToyBlock(dim, n_heads, i) for i in range(n_layers))
        self.ln_f = nn.LayerNorm(dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    @property
    def weights_path(self) -> Optional[str]:
        return self.weights

    def load_pretrained(self) -> None:
        load_base_weights(self, self.adapter_slots('block'), self.weights)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.wte(input_ids)

    def head(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.wte.weight)  # tied to the token embedding

    def forward(self, embeds, positions=None, mask=None, ctx=None, cache=None) -> Tensor:
        b, t, _ = embeds.shape
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + t, device=embeds.device).expand(b, t)
        h = embeds + self.wpe(positions)
        for blk in self.h:
            h = blk(h, mask, ctx, cache)
        if cache is not None:
            cache.length += t
        return self.ln_f(h)

    def new_cache(self, batch_size, max_len, dtype=None, device=None) -> KVCache:
        w = self.wte.weight
        return KVCache(self.num_layers, batch_size, max_len, self.n_heads,
                       self.dim // self.n_heads, dtype or w.dtype, device or w.device)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        names = {'attn': [('adapter_attn', ('attn.c_attn', ))],
                 'ffn': [('adapter_mlp', ('mlp.c_fc', ))]}
        names['block'] = names['attn'] + names['ffn']
        if placement not in names:
            raise ValueError(f'ToyGPT2: unknown adapter placement {placement!r}')
        return [AdapterSlot(blk, n, folds) for blk in self.h for n, folds in names[placement]]


# -------------------------------------------------------------------------- the toy encoder --
@ENCODERS.register_module()
class ToyPatchEncoder(VisionEncoder):
    """Patchify conv -> LayerNorm -> Linear mixing -> GELU, mean-pooled to ``num_features``
    tokens. Its one adapter slot wraps the norm, whose output only the mixing Linear reads."""

    def __init__(self, image_size: int = 32, patch_size: int = 8, width: int = 24,
                 num_features: int = 4, weights: Optional[str] = None):
        super().__init__()
        self.weights = weights
        self.size, self.k = image_size, num_features
        if (image_size // patch_size)**2 % num_features:
            raise ValueError('ToyPatchEncoder: num_features must divide the number of patches')
        self.patch = nn.Conv2d(3, width, patch_size, patch_size)
        self.norm = nn.LayerNorm(width)
        self.mix = nn.Linear(width, width)

    @property
    def width(self) -> int:
        return self.mix.out_features

    @property
    def num_features(self) -> int:
        return self.k

    @property
    def image_size(self) -> Tuple[int, int]:
        return (self.size, self.size)

    @property
    def weights_path(self) -> Optional[str]:
        return self.weights

    def load_pretrained(self) -> None:
        load_base_weights(self, self.adapter_slots('attn'), self.weights)

    def features(self, images: Tensor) -> Tensor:
        x = self.patch(images.to(self.patch.weight.dtype)).flatten(2).transpose(1, 2)  # (B, P, W)
        x = F.gelu(self.mix(self.norm(x)))
        return x.unflatten(1, (self.k, -1)).mean(2)  # (B, k, W)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        if placement != 'attn':
            raise ValueError(f"ToyPatchEncoder: only placement 'attn', got {placement!r}")
        return [AdapterSlot(self, 'norm', ('mix', ), wraps=True)]


# ------------------------------------------------------------------------------------ tests --
LLM_SIZES = dict(vocab_size=512, dim=32, n_layers=2, n_heads=2)
VIT_SIZES = dict(image_size=32, width=24, num_features=4)
CONFIG = """
_base_ = [{base!r}]
custom_imports = dict(imports=[{module!r}], allow_failed_imports=False)
tokenizer = dict(type='SentencePieceTokenizer', model_path={tok!r})
model = dict(
    tokenizer=tokenizer,
    llm=dict(_delete_=True, type='ToyGPT2', weights={llm_weights!r}, **{llm_sizes!r}),
    vision=dict(_delete_=True, type='ToyPatchEncoder', weights={vit_weights!r}, **{vit_sizes!r}),
    # routed LLM adapters (modality router); a plain RepAdapter in the encoder (foldable)
    vit_adapter=dict(_delete_=True, type='RepAdapter', hidden_dim=4, groups=2, dropout=0.0),
    generation_cfg=dict(max_new_tokens=8))
train_pipeline = [dict(type='LoadLaVINImage', size=32),
                  dict(type='TokenizeForLaVIN', tokenizer=tokenizer, max_len=512)]
train_dataloader = dict(dataset=dict(data_root={root!r}, pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(data_root={root!r}, pipeline=[
    train_pipeline[0], dict(train_pipeline[1], with_answer=False)]))
train_cfg = dict(max_epochs=3)
work_dir = {work_dir!r}
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A LaVIN on the toy backbones trained and tested by mma's Runner (as tools/train.py)."""
    tmp = tmp_path_factory.mktemp('toy')
    sqa = make_tiny_scienceqa(str(tmp / 'sqa'), n=8)
    # the "pretrained" base weights: files the backbones read in load_pretrained()
    torch.manual_seed(1)
    files = {}
    for key, cls, sizes in (('llm', ToyGPT2, LLM_SIZES), ('vit', ToyPatchEncoder, VIT_SIZES)):
        files[f'{key}_weights'] = str(tmp / f'{key}.pth')
        torch.save(cls(**sizes).state_dict(), files[f'{key}_weights'])
    path = tmp / 'lavin_toy.py'
    path.write_text(CONFIG.format(base=os.path.join(REPO, 'configs', 'tiny', 'lavin_tiny_sqa.py'),
                                  module=__name__, root=sqa['data_root'], tok=sqa['tokenizer'],
                                  work_dir=str(tmp / 'work'), llm_sizes=LLM_SIZES,
                                  vit_sizes=VIT_SIZES, **files))
    apply_mmengine_fixes()
    cfg = Config.fromfile(str(path))
    runner = RUNNERS.build(cfg)
    runner.train()
    metrics = runner.test()
    return dict(runner=runner, model=runner.model.eval(), metrics=metrics, config=str(path),
                checkpoint=str(tmp / 'work' / 'epoch_3.pth'), **files)


def _test_batch(runner) -> dict:
    batch = next(iter(runner.test_dataloader))
    return runner.model.data_preprocessor(batch, False)['inputs']


def test_runner_builds_trains_and_tests_the_toy_lavin(trained):
    model = trained['model']
    assert type(model.llm).__name__ == 'ToyGPT2'
    assert type(model.vision).__name__ == 'ToyPatchEncoder'
    assert model.num_visual_tokens == 4
    # the data pipeline took its visual-token count from the toy encoder
    assert trained['runner'].cfg.train_dataloader.dataset.pipeline[1].num_visual_tokens == 4
    loss = trained['runner'].message_hub.get_scalar('train/loss').data[0]
    assert len(loss) == 6 and loss[-2:].mean() < loss[:2].mean()  # 3 epochs x 2 batches; it learned
    # the test loop generated (KV cache, LaVIN.predict) for every test question
    assert trained['metrics']['sqa/count'] == 8
    assert 0 < trained['metrics']['sqa/mean_generated'] <= 8
    # init_weights read the backbones' own files (load_pretrained)
    base = torch.load(trained['llm_weights'], weights_only=True)
    assert torch.equal(model.llm.h[1].attn.c_attn.weight, base['h.1.attn.c_attn.weight'])
    base = torch.load(trained['vit_weights'], weights_only=True)
    assert torch.equal(model.vision.norm.module.weight, base['norm.weight'])


def test_preflight_checks_the_toy_config(trained):
    ok, lines = preflight(Config.fromfile(trained['config']))
    assert ok, lines
    report = '\n'.join(lines)
    assert '4 visual tokens per image' in report
    assert f"llm={trained['llm_weights']}" in report
    assert f"vision={trained['vit_weights']}" in report


def test_cached_greedy_decoding_equals_full_forwards(trained):
    model, runner = trained['model'], trained['runner']
    inputs = _test_batch(runner)
    steps = 4
    out = model.generate(inputs, max_new_tokens=steps, stop_at_eos=False, stop_pattern=None,
                         return_logits=True)
    assert out.steps == steps
    lengths = inputs['lengths']
    img_row = torch.cumsum(inputs['has_image'].long(), 0) - 1
    for i in range(inputs['input_ids'].shape[0]):
        has_image = bool(inputs['has_image'][i])
        prompt = inputs['input_ids'][i, :int(lengths[i])].tolist()
        for s in range(steps):  # reference: a full forward over prompt + tokens so far
            ids = torch.tensor([prompt + out.tokens[i][:s]])
            one = dict(input_ids=ids, has_image=torch.tensor([has_image]),
                       visual_pos=inputs['visual_pos'][i:i + 1],
                       images=inputs['images'][img_row[i]][None] if has_image else None)
            with torch.no_grad():
                logits = model(one, mode='tensor')[0, -1]
            assert int(logits.argmax()) == out.tokens[i][s], (i, s)
            torch.testing.assert_close(out.logits[s][i], logits, rtol=1e-4, atol=1e-4)


def _logits(model, inputs):
    with torch.no_grad():
        return model(inputs, mode='tensor')


@pytest.mark.parametrize('modality', ['image', 'text'])
def test_merged_toy_lavin_equals_unmerged(trained, modality):
    model = trained['model']
    inputs = _test_batch(trained['runner'])
    rows = inputs['has_image'] == (modality == 'image')
    assert rows.any()
    sub = dict(input_ids=inputs['input_ids'][rows], has_image=inputs['has_image'][rows],
               visual_pos=inputs['visual_pos'][rows],
               images=inputs['images'] if modality == 'image' else None)
    before = _logits(model, sub)
    c_attn = model.llm.h[0].attn.c_attn.weight.clone()
    merged = merge_lavin(model, modality).eval()
    torch.testing.assert_close(_logits(merged, sub), before, rtol=1e-5, atol=1e-5)
    # really folded: no adapter left in any slot, the toy's c_attn and the encoder's mix changed
    assert all(s.adapter is None for s in merged.llm.adapter_slots('block'))
    assert adapter_names(merged) == []
    assert not torch.equal(merged.llm.h[0].attn.c_attn.weight, c_attn)
    assert type(merged.vision.norm) is nn.LayerNorm
    # the original keeps its adapters
    assert all(s.adapter is not None for s in model.llm.adapter_slots('attn'))


def test_checkpoint_holds_trainable_tensors_and_reloads(trained):
    model = trained['model']
    names = model.trainable_names()
    assert set(model.trainable_state_dict()) == names
    allowed = ('llm.h.0.adapter_attn.', 'llm.h.1.adapter_attn.', 'vision.norm.adapter.',
               'projector.', 'modality_embedding.')
    assert all(n.startswith(allowed) for n in names)
    assert all(any(n.startswith(a) for n in names) for a in allowed)
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}
    saved = torch.load(trained['checkpoint'], map_location='cpu', weights_only=False)
    assert set(saved['state_dict']) == names
    # every frozen tensor names its file: load_model builds on the meta device, the backbones'
    # load_pretrained fill it, then the adapter checkpoint
    loaded = mma.load_model(trained['config'], trained['checkpoint'])
    assert type(loaded.llm).__name__ == 'ToyGPT2'
    assert not any(p.is_meta for p in loaded.parameters())
    inputs = _test_batch(trained['runner'])
    assert torch.equal(_logits(loaded, inputs), _logits(model, inputs))
