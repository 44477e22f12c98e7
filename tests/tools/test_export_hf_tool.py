"""tools/export_hf.py: a config and an adapter checkpoint in, transformers folders out (text: a
causal LM; image: LLaVA) whose logits equal ``mma.load_model(..., merge=...)``'s; a LaVIN layout
asked for as LLaVA is one error paragraph and exit status 2."""
import importlib.util
import os

import pytest
import torch

from conftest import randomize_adapters

transformers = pytest.importorskip('transformers', minversion='5')  # pip install '.[export]'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location('export_hf', os.path.join(ROOT, 'tools',
                                                                            'export_hf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path, tokenizer_path, llava: bool):
    import mma
    from mma.toy import tiny_lavin_cfg
    model_cfg = tiny_lavin_cfg(vocab_size=512)
    model_cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    if llava:
        model_cfg['vit_adapter'] = dict(type='RepAdapter', hidden_dim=8, groups=2, dropout=0.0)
        model_cfg['vision'].update(feature_type='patch', patch_layer=-1)
        model_cfg['projector'] = dict(type='MLPProjector')
    path = tmp_path / 'cfg.py'
    path.write_text(f'model = {model_cfg!r}\nrandomness = dict(seed=0)\n')
    model = mma.load_model(str(path))  # the frozen weights the seed gives
    randomize_adapters(model, seed=2)
    torch.save(model.trainable_state_dict(), tmp_path / 'a.pth')
    return str(path), str(tmp_path / 'a.pth')


def test_tool_writes_text_and_llava_folders(tmp_path, tokenizer_path, capsys):
    import mma
    torch.backends.mha.set_fastpath_enabled(False)
    cfg, ckpt = _config(tmp_path, tokenizer_path, llava=True)
    out = tmp_path / 'hf'
    _tool().main([cfg, '--checkpoint', ckpt, '--out', str(out), '--max-shard-size', '200KB'])
    printed = capsys.readouterr().out
    assert 'LlamaForCausalLM' in printed and 'LlavaForConditionalGeneration' in printed
    assert {'tokenizer.model', 'tokenizer_config.json', 'generation_config.json'} <= \
        set(os.listdir(out / 'text'))
    assert (out / 'text' / 'model.safetensors.index.json').is_file()  # sharded as asked
    ids = torch.randint(3, 512, (1, 16))
    text = mma.load_model(cfg, ckpt, merge='text')
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out / 'text')).eval()
    with torch.no_grad():
        ours = text(dict(input_ids=ids, has_image=torch.tensor([False])), mode='tensor')[:, 1:]
        assert (hf(ids).logits - ours).abs().max() <= 1e-5
    image = mma.load_model(cfg, ckpt, merge='image')
    llava = transformers.LlavaForConditionalGeneration.from_pretrained(str(out / 'image'))
    k, img = image.num_visual_tokens, torch.randn(1, 3, 32, 32)
    hf_ids = torch.cat([ids[:, :2], torch.full((1, k), llava.config.image_token_id),
                        ids[:, 2:]], dim=1)
    with torch.no_grad():
        ours = image(dict(input_ids=ids, has_image=torch.tensor([True]),
                          visual_pos=torch.tensor([2]), images=img), mode='tensor')[:, 1:]
        theirs = llava.eval()(input_ids=hf_ids, pixel_values=img).logits[..., :512]
    assert (theirs - ours).abs().max() <= 1e-5


def test_tool_refuses_a_lavin_layout_as_llava(tmp_path, tokenizer_path, capsys):
    cfg, ckpt = _config(tmp_path, tokenizer_path, llava=False)
    with pytest.raises(SystemExit) as exc:
        _tool().main([cfg, '--checkpoint', ckpt, '--out', str(tmp_path / 'hf'),
                      '--modality', 'image'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('tools/export_hf.py: error: ') and "feature_type='cls'" in err
