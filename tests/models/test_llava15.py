"""Starting from LLaVA-1.5: a tiny ``LlavaForConditionalGeneration`` made and saved by
transformers (and the same weights in LLaVA's release layout + ``mm_projector.bin``) loads into mma
by folder path alone and, with zero-initialised adapters and the modality token outside the
sequence, *is* that model: transformers' logits and greedy tokens on a prompt built by
transformers' own processor and chat template."""
import json
import os

import pytest
import torch

import mma
from mma.datasets import LoadLaVINImage, TokenizeForLaVIN, mma_collate
from mma.datasets.templates import VICUNA_V1_SYSTEM
from mma.toy import train_hf_tokenizer

transformers = pytest.importorskip('transformers')
from PIL import Image  # noqa: E402

from tests.conftest import randomize_adapters, sentences  # noqa: E402

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# transformers' llava-hf/llava-1.5-7b-hf chat template (chat_template.json)
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() "
    "+ ': '}}{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}{% if message['role'] != 'assistant' %}{% for "
    "content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] "
    "+ ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}"
    "{% endif %}")
K = 16  # (32 / 8)^2 patch tokens


@pytest.fixture(scope='module')
def llava_hf(tmp_path_factory):
    """A llava-hf folder written by ``save_pretrained`` (model, tokenizer with ``<image>``,
    processor with the chat template)."""
    root = tmp_path_factory.mktemp('llava')
    folder = str(root / 'llava-hf')
    train_hf_tokenizer(sentences() + [VICUNA_V1_SYSTEM, 'USER: ASSISTANT:'], folder, 'llama3')
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    tok.add_tokens(['<image>'], special_tokens=True)
    image_id = tok.convert_tokens_to_ids('<image>')
    rows = -(-(image_id + 1) // 64) * 64  # llava-hf pads the embedding to a multiple of 64
    text = transformers.LlamaConfig(
        vocab_size=rows, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-5, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        image_size=32, patch_size=8, hidden_act='quick_gelu', projection_dim=32)
    cfg = transformers.LlavaConfig(text_config=text, vision_config=vision,
                                   image_token_id=image_id, vision_feature_layer=-2,
                                   vision_feature_select_strategy='default')
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration(cfg).eval()
    model.save_pretrained(folder)
    # LLaVA-1.5's processor is transformers 4's CLIPImageProcessor, PIL's bicubic resize: in
    # transformers 5 that is CLIPImageProcessorPil (CLIPImageProcessor there resizes with
    # torchvision, up to 0.015 apart on this image)
    pil = getattr(transformers, 'CLIPImageProcessorPil', transformers.CLIPImageProcessor)
    image_processor = pil(
        size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32}, image_mean=CLIP_MEAN,
        image_std=CLIP_STD)
    processor = transformers.LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=8,
        vision_feature_select_strategy='default', chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1)
    processor.save_pretrained(folder)
    return dict(folder=folder, model=model, processor=processor, root=root)


def release_layout(llava_hf) -> dict:
    """The same weights as LLaVA's own release folder (``llava_llama``, ``model.mm_projector``),
    a stage-1 ``mm_projector.bin`` and a transformers 5 ``CLIPVisionModel`` folder."""
    root, model = llava_hf['root'], llava_hf['model']
    release, stage1, clip = (str(root / n) for n in ('release', 'stage1', 'clip'))
    if os.path.isdir(release):
        return dict(release=release, stage1=stage1, clip=clip)
    sd = model.state_dict()
    llm = {k.replace('model.language_model.', 'model.'): v for k, v in sd.items()
           if k.startswith('model.language_model.')}
    llm['lm_head.weight'] = sd['lm_head.weight']
    proj = {f'model.mm_projector.{i}.{kind}': sd[f'model.multi_modal_projector.linear_{j}.{kind}']
            for i, j in ((0, 1), (2, 2)) for kind in ('weight', 'bias')}
    text = model.config.text_config.to_dict()
    cfg = dict(text, model_type='llava_llama', architectures=['LlavaLlamaForCausalLM'],
               mm_projector_type='mlp2x_gelu', mm_vision_select_layer=-2,
               mm_vision_tower='openai/clip-vit-large-patch14-336', image_aspect_ratio='pad')
    os.makedirs(release)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in {**llm, **proj}.items()},
              os.path.join(release, 'model.safetensors'))
    with open(os.path.join(release, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    llava_hf['processor'].tokenizer.save_pretrained(release)
    os.makedirs(stage1)
    torch.save({k: v.clone() for k, v in proj.items()}, os.path.join(stage1, 'mm_projector.bin'))
    tower = transformers.CLIPVisionModel(model.config.vision_config)
    tower.load_state_dict(model.model.vision_tower.state_dict())
    tower.save_pretrained(clip)
    return dict(release=release, stage1=stage1, clip=clip)


def tf4_layout(llava_hf) -> str:
    """The llava-hf folder as transformers 4 wrote it (``vision_tower.vision_model.*``), sharded
    in two files with an index, as the hub's llava-1.5-7b-hf."""
    import shutil
    from safetensors.torch import load_file, save_file
    src, out = llava_hf['folder'], str(llava_hf['root'] / 'llava-hf-tf4')
    if os.path.isdir(out):
        return out
    shutil.copytree(src, out)
    sd = load_file(os.path.join(out, 'model.safetensors'))
    os.remove(os.path.join(out, 'model.safetensors'))
    sd = {k.replace('vision_tower.', 'vision_tower.vision_model.', 1): v for k, v in sd.items()}
    shards = ({k: v for k, v in sd.items() if k.startswith('language_model.')},
              {k: v for k, v in sd.items() if not k.startswith('language_model.')})
    weight_map = {}
    for i, part in enumerate(shards):
        name = f'model-0000{i + 1}-of-00002.safetensors'
        save_file(part, os.path.join(out, name))
        weight_map.update({k: name for k in part})
    with open(os.path.join(out, 'model.safetensors.index.json'), 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    return out


def mma_cfg(llm: str, vision: str, projector: str, tokenizer: str) -> dict:
    """LLaVA-1.5 + MMA by folder paths: zero-initialised routed adapters, no modality token in
    the sequence."""
    adapter = dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, dropout=0.0,
                   router=dict(type='ModalityRouter'))
    return dict(type='LaVIN', modality_in_sequence=False,
                llm=dict(type='LLaMA', checkpoint=llm),
                # the tower's sizes from the folder's config.json (vision_config)
                vision=dict(type='CLIPViT', model_name=None, pretrained=vision,
                            feature_type='patch', patch_layer=-2),
                projector=dict(type='MLPProjector', weights=projector),
                llm_adapter=adapter, vit_adapter=dict(adapter),
                tokenizer=dict(type='AutoTokenizer', path=tokenizer))


def build(cfg: dict):
    model = mma.build_model(cfg)
    model.init_weights()
    return model.eval()


def _picture(tmp_path) -> str:
    g = torch.Generator().manual_seed(1)
    path = str(tmp_path / 'wide.png')
    Image.fromarray((torch.rand(30, 60, 3, generator=g) * 255).byte().numpy()).save(path)
    return path


def expand2square(img, background):
    """LLaVA's (llava/mm_utils.py)."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def _hf_batch(llava_hf, path):
    processor = llava_hf['processor']
    messages = [dict(role='system', content=[dict(type='text', text=VICUNA_V1_SYSTEM)]),
                dict(role='user', content=[dict(type='image'),
                                           dict(type='text', text='what color is the sky')])]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text == (VICUNA_V1_SYSTEM + ' USER: <image>\nwhat color is the sky ASSISTANT:')
    img = expand2square(Image.open(path).convert('RGB'), tuple(int(255 * m) for m in CLIP_MEAN))
    # the chat template ends the question with a space before ASSISTANT:, as LLaVA's conv
    return processor(text=text, images=img, return_tensors='pt')


def _mma_batch(tokenizer_folder, path):
    load = LoadLaVINImage(size=32, mean=CLIP_MEAN, std=CLIP_STD, pad_to_square=True)
    tokenize = TokenizeForLaVIN(tokenizer=dict(type='AutoTokenizer', path=tokenizer_folder),
                                max_len=None, num_visual_tokens=K, template='llava_v1',
                                with_answer=False)
    sample = tokenize(load(dict(img_path=path, prompt='what color is the sky', qid='q')))
    return mma_collate([sample])['inputs']


def test_pad_to_square_equals_clip_image_processor_after_expand2square(llava_hf, tmp_path):
    path = _picture(tmp_path)
    theirs = _hf_batch(llava_hf, path)['pixel_values'][0]
    load = LoadLaVINImage(size=32, mean=CLIP_MEAN, std=CLIP_STD, pad_to_square=True)
    ours = load(dict(img_path=path))['image']
    assert (ours - theirs).abs().max() <= 1e-5
    squashed = LoadLaVINImage(size=32, mean=CLIP_MEAN, std=CLIP_STD)(dict(img_path=path))
    assert (squashed['image'] - theirs).abs().max() > 0.1  # the option is what makes them equal


@pytest.mark.parametrize('layout', ['llava-hf', 'llava-hf-tf4', 'release'])
def test_mma_from_llava_folders_is_llava(llava_hf, tmp_path, layout):
    folder = llava_hf['folder']
    if layout == 'llava-hf':
        cfg = mma_cfg(folder, folder, folder, folder)
    elif layout == 'llava-hf-tf4':
        tf4 = tf4_layout(llava_hf)
        cfg = mma_cfg(tf4, tf4, tf4, tf4)
    else:
        r = release_layout(llava_hf)
        cfg = mma_cfg(r['release'], r['clip'], r['stage1'], r['release'])
    model = build(cfg)
    path = _picture(tmp_path)
    batch = _hf_batch(llava_hf, path)
    inputs = _mma_batch(folder, path)
    # the same token sequence: transformers' ids with the k image placeholders taken out
    image_id = llava_hf['model'].config.image_token_id
    row = batch['input_ids'][0]
    is_image = row == image_id
    assert int(is_image.sum()) == K
    assert inputs['input_ids'][0].tolist() == row[~is_image].tolist()
    assert int(inputs['visual_pos'][0]) == int(is_image.nonzero()[0, 0])
    assert (inputs['images'] - batch['pixel_values']).abs().max() <= 1e-5
    with torch.no_grad():
        theirs = llava_hf['model'](**batch).logits
        ours = model(inputs, mode='tensor')
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-5
    hf_tokens = llava_hf['model'].generate(**batch, max_new_tokens=6, do_sample=False,
                                           eos_token_id=None)[0, row.shape[0]:]
    out = model.generate(inputs, max_new_tokens=6, stop_at_eos=False)
    assert out.tokens[0] == hf_tokens.tolist()


def test_modality_token_outside_the_sequence_routes_as_inside(llava_hf):
    """Randomised routed adapters: the routers read the same modality token either way, and the
    text positions attend alike (RoPE is relative), so the logits agree."""
    folder = llava_hf['folder']
    inside = build(dict(mma_cfg(folder, folder, folder, folder), modality_in_sequence=True))
    randomize_adapters(inside)
    outside = build(mma_cfg(folder, folder, folder, folder))
    outside.load_state_dict(inside.state_dict())
    torch.manual_seed(2)
    inputs = dict(input_ids=torch.randint(3, 200, (2, 10)), has_image=torch.tensor([True, False]),
                  visual_pos=torch.tensor([2, 0]), images=torch.randn(1, 3, 32, 32),
                  lengths=torch.tensor([10, 7]))
    with torch.no_grad():
        a = inside(inputs, mode='tensor')[:, 1:]
        b = outside(inputs, mode='tensor')
        diff = (a - b).abs().max()
        assert diff <= 1e-4, diff
        zero = build(mma_cfg(folder, folder, folder, folder))  # zero adapters: routing is moot
        assert (zero(inputs, mode='tensor') - b).abs().max() > 1e-3
        ga = inside.generate(inputs, max_new_tokens=5, stop_at_eos=False, return_logits=True)
        gb = outside.generate(inputs, max_new_tokens=5, stop_at_eos=False, return_logits=True)
    assert ga.tokens == gb.tokens
    assert max((x - y).abs().max() for x, y in zip(ga.logits, gb.logits)) <= 1e-4
    from mma.apps.visualization import router_weights
    wa, wb = router_weights(inside), router_weights(outside)
    assert wa.keys() == wb.keys() and len(wa) == 2
    assert all((wa[k] - wb[k]).abs().max() <= 1e-6 for k in wa)


def test_projector_weights_are_strict_and_named(llava_hf, tmp_path):
    r = release_layout(llava_hf)
    bad = {k: (v[:, :-1] if v.dim() == 2 else v) for k, v in
           torch.load(os.path.join(r['stage1'], 'mm_projector.bin')).items()}
    torch.save(bad, tmp_path / 'mm_projector.bin')
    folder = llava_hf['folder']
    cfg = mma_cfg(folder, folder, str(tmp_path / 'mm_projector.bin'), folder)
    with pytest.raises(ValueError, match=r'mm_projector.bin: model.mm_projector.0.weight has shape '
                       r'\(64, 31\) but the model\'s projector fc1.weight has \(64, 32\)'):
        build(cfg)
    torch.save({k: v for k, v in bad.items() if '.2.' not in k}, tmp_path / 'mm_projector.bin')
    with pytest.raises(KeyError, match=r"lacks LLaVA projector weights for \['fc2.bias', "
                       r"'fc2.weight'\]"):
        build(cfg)
    with pytest.raises(ValueError, match='LLaVA release folder, which holds no vision tower'):
        build(mma_cfg(r['release'], r['release'], r['release'], r['release']))
