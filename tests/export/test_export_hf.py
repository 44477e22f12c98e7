"""Export to transformers: each exported folder loads with transformers' own classes (no custom
code) and gives the logits of mma's merged model; the folded biases are what makes them equal."""
import glob
import json
import os

import pytest
import torch

import mma
from mma.errors import MMAUserError
from mma.export import export_hf, llava_problems
from mma.export import folder as export_folder
from mma.models.merge import merge_lavin
from mma.toy import tiny_lavin_cfg

transformers = pytest.importorskip('transformers', minversion='5')  # pip install '.[export]'

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VOCAB = 300
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
              max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
LLAMA3_ROPE = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=64, rope_theta=500000.0)
HF_FAMILIES = {
    'llama3.1': ('LlamaConfig', 'LlamaForCausalLM',
                 dict(rope_scaling=LLAMA3_ROPE, tie_word_embeddings=True)),
    'mistral': ('MistralConfig', 'MistralForCausalLM', dict(rope_theta=1e6, sliding_window=None)),
    'qwen2': ('Qwen2Config', 'Qwen2ForCausalLM', dict(rope_theta=1e6, tie_word_embeddings=True)),
    'phi3': ('Phi3Config', 'Phi3ForCausalLM', dict(sliding_window=48, pad_token_id=0)),
}


@pytest.fixture(scope='module')
def hf_folders(tmp_path_factory):
    """Tiny transformers models of each family, saved as base weights for mma."""
    out = {}
    for family, (cfg_cls, model_cls, extra) in HF_FAMILIES.items():
        torch.manual_seed(1)
        hf = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**COMMON, **extra))
        with torch.no_grad():
            for n, p in hf.named_parameters():
                if n.endswith('_proj.bias'):
                    p.normal_(0, 0.5)
        path = tmp_path_factory.mktemp(family.replace('.', '_'))
        hf.save_pretrained(path)
        out[family] = str(path)
    return out


def _trained_looking(model):
    """Adapter tensors random and non-zero, so that every fold is non-trivial."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 1.0 if 'router' in name else 0.1)
    return model.eval()


def _text_lavin(family, placement, hf_folders, adapter=None):
    llm = dict(type='LLaMA', preset='tiny', vocab_size=VOCAB) if family == 'llama' else \
        dict(type='LLaMA', checkpoint=hf_folders[family])
    adapter = adapter or dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, dropout=0.0,
                              router=dict(type='ModalityRouter', temperature=10.0))
    cfg = dict(type='LaVIN', llm=llm, llm_adapter=adapter if placement else None,
               llm_adapter_placement=placement or 'attn')
    torch.manual_seed(0)
    model = mma.build_model(cfg)
    model.init_weights()
    return _trained_looking(model)


def _text_logits(merged, ids):
    with torch.no_grad():  # mma's row starts with the modality token: drop its position
        return merged(dict(input_ids=ids, has_image=torch.zeros(len(ids), dtype=torch.bool)),
                      mode='tensor')[:, 1:]


def _hf_text_logits(path, ids):
    hf = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        return hf, hf(ids).logits


# (family, LLM adapter placement, the architecture written): the family's own where the folded
# biases fit it (Qwen2's q/k/v biases; no fold at all), else LLaMA with the bias flags.
TEXT_CASES = [('llama', 'attn', 'LlamaForCausalLM'), ('llama', 'ffn', 'LlamaForCausalLM'),
              ('llama3.1', 'attn', 'LlamaForCausalLM'),
              ('mistral', 'attn', 'LlamaForCausalLM'), ('mistral', None, 'MistralForCausalLM'),
              ('qwen2', 'attn', 'Qwen2ForCausalLM'), ('qwen2', 'ffn', 'LlamaForCausalLM'),
              ('phi3', None, 'Phi3ForCausalLM'), ('phi3', 'block', 'LlamaForCausalLM')]


@pytest.mark.parametrize('family,placement,arch', TEXT_CASES)
def test_text_export_equals_merged_model(hf_folders, tmp_path, family, placement, arch):
    merged = merge_lavin(_text_lavin(family, placement, hf_folders), 'text')
    assert export_hf(merged, str(tmp_path), 'text') == arch
    cfg = json.loads((tmp_path / 'config.json').read_text())
    assert cfg['architectures'] == [arch] and 'auto_map' not in cfg  # no custom code
    assert cfg['rope_theta'] == cfg['rope_parameters']['rope_theta']  # transformers 4 reads it
    assert cfg['rope_parameters']['rope_type'] == ('llama3' if family == 'llama3.1' else 'default')
    if arch == 'LlamaForCausalLM':
        assert cfg['attention_bias'] == (placement in ('attn', 'block') or family == 'qwen2')
        assert cfg['mlp_bias'] == (placement in ('ffn', 'block'))
    ids = torch.randint(3, VOCAB, (2, 20))
    hf, logits = _hf_text_logits(str(tmp_path), ids)
    assert type(hf).__name__ == arch
    assert (logits - _text_logits(merged, ids)).abs().max() <= 1e-5
    gen = json.loads((tmp_path / 'generation_config.json').read_text())
    assert gen['eos_token_id'] == 2


@pytest.mark.parametrize('family,placement', [('llama', 'attn'), ('qwen2', 'ffn')])
def test_dropping_a_folded_bias_breaks_equality(hf_folders, tmp_path, monkeypatch, family,
                                                placement):
    """The equality above is not vacuous: an export that loses the folds' biases differs."""
    merged = merge_lavin(_text_lavin(family, placement, hf_folders), 'text')
    real = export_folder.llm_hf_state_dict

    def without_fold_biases(llm, family=None):
        sd = real(llm, family)
        kinds = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj') \
            if placement == 'attn' else ('mlp.gate_proj', 'mlp.up_proj')
        return {k: (v.new_zeros(v.shape) if k.endswith('.bias') and any(n in k for n in kinds)
                    else v) for k, v in sd.items()}
    monkeypatch.setattr(export_folder, 'llm_hf_state_dict', without_fold_biases)
    export_hf(merged, str(tmp_path), 'text')
    ids = torch.randint(3, VOCAB, (2, 20))
    _, logits = _hf_text_logits(str(tmp_path), ids)
    assert (logits - _text_logits(merged, ids)).abs().max() > 1e-3


def _llava_lavin(vit_adapter='RepAdapter', vocab=VOCAB):
    cfg = tiny_lavin_cfg(vocab_size=vocab, router=True, placement='attn',
                         llm=dict(preset='tiny-gqa'))
    cfg['vit_adapter'] = dict(type=vit_adapter, hidden_dim=8, groups=2, dropout=0.0)
    cfg['vit_adapter_placement'] = 'block'
    cfg['vision'].update(feature_type='patch', patch_layer=-2)
    cfg['projector'] = dict(type='MLPProjector')
    torch.manual_seed(0)
    return _trained_looking(mma.build_model(cfg))


def test_llava_export_equals_merged_model(tmp_path, tokenizer):
    torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fast path: ~1e-6
    vocab = tokenizer.vocab_size
    merged = merge_lavin(_llava_lavin(vocab=vocab), 'image')
    merged.tokenizer = tokenizer
    assert llava_problems(merged) == []
    assert export_hf(merged, str(tmp_path), 'image') == 'LlavaForConditionalGeneration'
    hf = transformers.LlavaForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
    assert os.path.isfile(tmp_path / 'preprocessor_config.json')
    from safetensors import safe_open
    with safe_open(str(tmp_path / 'model.safetensors'), 'pt') as f:  # the hub's LLaVA layout
        assert {k.split('.')[0] for k in f.keys()} == {'language_model', 'vision_tower',
                                                       'multi_modal_projector'}
        assert all(k.startswith('vision_tower.vision_model.') for k in f.keys()
                   if k.startswith('vision_tower'))
    image_id, k = hf.config.image_token_id, merged.num_visual_tokens
    assert hf.config.vision_feature_layer == -2 and hf.config.image_seq_length == k
    torch.manual_seed(3)
    ids, pos = torch.randint(3, vocab, (2, 12)), torch.tensor([3, 5])
    images = torch.randn(2, 3, 32, 32)
    # mma inserts the k visual tokens before input_ids[pos]; Llava replaces k image tokens there
    hf_ids = torch.stack([torch.cat([r[:p], torch.full((k, ), image_id), r[p:]])
                          for r, p in zip(ids, pos.tolist())])
    with torch.no_grad():
        ours = merged(dict(input_ids=ids, has_image=torch.ones(2, dtype=torch.bool),
                           visual_pos=pos, images=images), mode='tensor')[:, 1:]
        theirs = hf(input_ids=hf_ids, pixel_values=images).logits
    assert theirs.shape[-1] == vocab + 1  # + the placeholder, suppressed in generation
    assert (theirs[..., :vocab] - ours).abs().max() <= 1e-5
    gen = json.loads((tmp_path / 'generation_config.json').read_text())
    assert gen['suppress_tokens'] == [image_id] and gen['eos_token_id'] == tokenizer.eos_id
    # The folder's processor: a prompt with <image> becomes one placeholder per patch where mma
    # puts the visual tokens, and the rest is mma's tokenisation (BOS first)
    from PIL import Image
    processor = transformers.AutoProcessor.from_pretrained(str(tmp_path))
    picture = Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy())
    batch = processor(text='Image: <image> what color is the sky', images=picture,
                      return_tensors='pt')
    row = batch['input_ids'][0]
    is_image = row == image_id
    assert is_image.sum() == k and bool(is_image[is_image.nonzero()[0, 0]:][:k].all())
    text = row[~is_image]
    assert text.tolist() == [tokenizer.bos_id] + tokenizer.encode('Image:') + \
        tokenizer.encode('what color is the sky')
    with torch.no_grad():
        ours = merged(dict(input_ids=text[None], has_image=torch.ones(1, dtype=torch.bool),
                           visual_pos=is_image.nonzero()[:1, 0],
                           images=batch['pixel_values']), mode='tensor')[:, 1:]
        theirs = hf(**batch).logits[..., :vocab]
    assert (theirs - ours).abs().max() <= 1e-5


def test_lavin_layouts_are_refused_with_the_reason(tmp_path):
    lavin = _trained_looking(mma.build_model(tiny_lavin_cfg(vocab_size=VOCAB)))
    with pytest.raises(MMAUserError) as err:
        export_hf(merge_lavin(lavin, 'image'), str(tmp_path), 'image')
    msg = str(err.value)
    assert "feature_type='cls'" in msg and 'LaVINProjector' in msg and 'routed ViT' in msg
    assert not os.listdir(tmp_path)  # nothing half-written
    routed = merge_lavin(_llava_lavin('RoutedRepAdapter'), 'image')
    assert [p for p in llava_problems(routed) if 'routed ViT' in p]
    from mma.toy import TINY_SIGLIP_VISION_CFG, register_tiny_timm_models
    register_tiny_timm_models()
    cfg = tiny_lavin_cfg(vocab_size=VOCAB, vit_adapters=False)
    cfg['vision'] = dict(type='CLIPViT', model_name=None, vision_cfg=TINY_SIGLIP_VISION_CFG,
                         feature_type='patch', patch_layer=-2)
    cfg['projector'] = dict(type='MLPProjector')
    siglip = merge_lavin(mma.build_model(cfg).eval(), 'image')
    assert [p for p in llava_problems(siglip) if 'timm tower' in p]
    with pytest.raises(MMAUserError, match=r'still holds \d+ adapters.*merged for one modality'):
        export_hf(lavin, str(tmp_path), 'text')  # not merged


PEFT_CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', 'ablations', 'tiny', 'peft_*.py')))


@pytest.mark.parametrize('config', PEFT_CONFIGS, ids=os.path.basename)
def test_peft_trained_lavin_exports_or_is_refused(hf_folders, tmp_path, config):
    """The tiny PEFT configs' LLM adapters (LoRA, DoRA, IA³, MMA over LoRA: they fold) export
    after the text merge as a plain transformers causal LM with mma's logits; LLaMA-Adapter's
    prefix never folds, so its export is refused with the reason and nothing is written."""
    from mmengine.config import Config
    model_cfg = Config.fromfile(config).model
    adapter, placement = dict(model_cfg.llm_adapter), model_cfg.llm_adapter_placement
    if placement.startswith('prefix:'):  # the demo's top 4 layers: all of the tiny LLM's 2
        placement = 'prefix'
    merged = merge_lavin(_text_lavin('llama', placement, hf_folders, adapter), 'text')
    out = tmp_path / 'text'
    if adapter['type'] == 'LLaMAAdapterPrefix':
        with pytest.raises(MMAUserError, match=r'LLaMA-Adapter prefixes .*layers\.\d+\.attention'
                           r'\.adapter_prefix.*never folds'):
            export_hf(merged, str(out), 'text')
        assert not out.exists()
        return
    assert export_hf(merged, str(out), 'text') == 'LlamaForCausalLM'
    cfg = json.loads((out / 'config.json').read_text())
    assert not cfg['attention_bias'] and not cfg['mlp_bias']  # weight folds: plain LLaMA
    ids = torch.randint(3, VOCAB, (2, 20))
    _, logits = _hf_text_logits(str(out), ids)
    assert (logits - _text_logits(merged, ids)).abs().max() <= 1e-5
    # the folds changed the frozen weights (the equality is not the base model's)
    base = _text_lavin('llama', None, hf_folders)
    assert (_text_logits(base, ids) - _text_logits(merged, ids)).abs().max() > 1e-3
