"""tools/chat.py runs with piped stdin and streams the model's reply."""
import os
import subprocess
import sys

import torch

from conftest import randomize_adapters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_chat_piped_stdin(tmp_path, tokenizer_path):
    import mma
    from mma.datasets import LoadLaVINImage, TokenizeForLaVIN, mma_collate
    from mma.toy import tiny_lavin_cfg
    from PIL import Image
    model_cfg = tiny_lavin_cfg(vocab_size=512)
    model_cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    (tmp_path / 'chat.py').write_text(f'model = {model_cfg!r}\n')
    torch.manual_seed(0)
    model = mma.build_model(model_cfg)
    randomize_adapters(model, seed=2)
    torch.save(model.trainable_state_dict(), tmp_path / 'a.pth')
    img = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).byte()
    Image.fromarray(img.numpy()).save(tmp_path / 'x.png')

    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/chat.py'), str(tmp_path / 'chat.py'),
         str(tmp_path / 'a.pth'), '--image', str(tmp_path / 'x.png'), '--max-new-tokens', '12'],
        input='what color is the sky\nwhich animal can fly\n', capture_output=True, text=True,
        env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replies = [l[len('Assistant: '):] for l in proc.stdout.splitlines()
               if l.startswith('Assistant: ')]
    assert len(replies) == 2

    # the first reply is what the model generates for the one-turn prompt
    model.eval()
    path = str(tmp_path / 'x.png')
    sample = TokenizeForLaVIN(model.tokenizer, max_len=None, with_answer=False)(dict(
        prompt='Instruction: what color is the sky\nResponse:', img_path=path,
        image=LoadLaVINImage(size=32).load(path)))
    batch = mma_collate([sample])
    expect = model.generate(batch['inputs'], max_new_tokens=12,
                            stop_strings=['\nInstruction:']).texts[0]
    assert expect.strip() and replies[0] == expect.split('\n')[0]
