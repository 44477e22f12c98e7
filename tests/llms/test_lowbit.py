"""LaVIN-lite switches: 4/8-bit frozen LLM linears and paged AdamW (CUDA + bitsandbytes only)."""
import copy

import pytest
import torch
from torch import nn

import mma
from mma.llms import LLaMA
from mma.registry import OPTIMIZERS
from mma.toy import tiny_lavin_cfg

NO_CUDA = 'bitsandbytes 4/8-bit layers and paged optimizers need CUDA; this machine has none'
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)


def test_unknown_quantization_mode():
    with pytest.raises(ValueError, match=r"unknown LLaMA quantization 'int3'; expected one of "
                       r"\('nf4', 'fp4', 'int8'\)"):
        LLaMA(preset='tiny', quantization='int3')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error raised without CUDA')
def test_without_cuda_the_switches_fail_clearly():
    with pytest.raises(RuntimeError, match=r"LLaMA quantization='nf4' needs a CUDA GPU .* this "
                       r'machine has none'):
        LLaMA(preset='tiny', quantization='nf4')
    with pytest.raises(RuntimeError, match='PagedAdamW32bit needs a CUDA GPU'):
        OPTIMIZERS.build(dict(type='PagedAdamW32bit', params=[nn.Parameter(torch.zeros(2))]))


@cuda
@pytest.mark.parametrize('mode,tol', [('nf4', 0.1), ('int8', 0.02)])
def test_quantized_llama_close_to_full_precision(mode, tol):
    pytest.importorskip('bitsandbytes')
    import bitsandbytes as bnb
    torch.manual_seed(0)
    ref = LLaMA(preset='tiny', dim=256, n_heads=4, multiple_of=64).cuda().eval()
    q = copy.deepcopy(ref).cpu()
    q.quantization = mode
    q.load_pretrained()
    kinds = (bnb.nn.Linear4bit, ) if mode != 'int8' else (bnb.nn.Linear8bitLt, )
    assert sum(isinstance(m, kinds) for m in q.modules()) == 7 * ref.args.n_layers
    q.cuda()
    ids = torch.randint(0, 512, (2, 16), device='cuda')
    with torch.no_grad():
        a = ref.output(ref(ref.tok_embeddings(ids)))
        b = q.output(q(q.tok_embeddings(ids)))
    rel = ((a - b).abs().max() / a.abs().max()).item()
    assert 0 < rel < tol, rel


@cuda
def test_lite_lavin_trains_adapters_with_paged_adamw():
    pytest.importorskip('bitsandbytes')
    cfg = tiny_lavin_cfg(vocab_size=512)
    cfg['llm'].update(quantization='nf4', dim=256, n_heads=4, multiple_of=64)
    torch.manual_seed(0)
    model = mma.build_model(cfg).cuda()
    model.init_weights()
    trainable = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in trainable:
            p.normal_(0, 0.05)
    opt = OPTIMIZERS.build(dict(type='PagedAdamW32bit', params=trainable, lr=1e-2))
    before = [p.detach().clone() for p in trainable]
    inputs = dict(input_ids=torch.randint(3, 512, (2, 10), device='cuda'),
                  has_image=torch.tensor([True, False], device='cuda'),
                  visual_pos=torch.tensor([3, 3], device='cuda'),
                  images=torch.randn(1, 3, 32, 32, device='cuda'))
    logits = model(inputs, mode='tensor')
    logits.float().pow(2).mean().backward()
    router = model.llm.layers[0].adapter_attn.router.linear.weight
    assert router.grad is not None and router.grad.abs().sum() > 0
    opt.step()
    assert all(not torch.equal(p, b) for p, b in zip(trainable, before))
