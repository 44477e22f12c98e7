"""The CPU demo end to end: assets (data, tokenizer, pretrained tiny backbones), LaVIN training
with the mmengine Runner, ScienceQA evaluation with the metric table."""
import glob
import json
import os
import time
from typing import Callable, Dict, Optional, Tuple

from mmengine.config import Config

from .pretrain import pretrain_llm, pretrain_vit, problem_sequences, problem_texts
from .synthetic import CHOICES, write_synthetic_scienceqa

#: The repository root (mma/apps/demo/run.py is three packages below it).
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, 'configs', 'lavin_tiny_demo.py')

#: Sizes of the synthetic data and pretraining; ``quick`` is for tests.
SETTINGS = {
    'full': dict(n_train=1200, n_val=100, n_test=400, vit_steps=300, llm_steps=400),
    'quick': dict(n_train=800, n_val=16, n_test=96, vit_steps=200, llm_steps=200),
}


def set_asset_paths(cfg: Config, assets: str) -> None:
    """Point every path field of the demo config at ``assets``."""
    data_root = os.path.join(assets, 'scienceqa')
    llama_dir = os.path.join(assets, 'llama')
    # tokenizer.model (sentencepiece) or tokenizer.json (HF), as the config names it
    tok = os.path.join(llama_dir, os.path.basename(cfg.tokenizer_path))
    cfg.assets, cfg.data_root, cfg.llama_dir, cfg.tokenizer_path = assets, data_root, llama_dir, tok
    cfg.vit_file = os.path.join(assets, 'vit.pt')
    m = cfg.model
    m.llm.checkpoint = llama_dir
    if m.get('vision') is not None:
        m.vision.pretrained = cfg.vit_file
    if m.get('tokenizer') is not None:
        m.tokenizer.model_path = tok
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if not dl:
            continue
        dl.dataset.data_root = data_root
        for t in dl.dataset.pipeline:
            if t.get('type') == 'TokenizeForLaVIN' and t.get('tokenizer') is not None:
                t.tokenizer.model_path = tok  # a pipeline that states its own


def prepare_assets(cfg: Config, setting: str = 'full', seed: int = 0,
                   log: Callable[[str], None] = print) -> Dict:
    """Write the synthetic data set, train the tokenizer, pretrain the tiny ViT and LLaMA.

    Cached: a ``READY.json`` in the assets folder records what was made; a second call with the
    same settings returns at once.
    """
    from mma.llms import build_tokenizer
    from mma.llms.checkpoints import check_tokenizer_vocab
    from mma.toy import HF_TOKENIZER_STYLES, train_hf_tokenizer, train_tokenizer
    spec = dict(SETTINGS[setting], seed=seed, llm=dict(cfg.llm_params),
                vision=dict(cfg.vision_cfg), prompt_format=cfg.prompt_format,
                tokenizer=os.path.basename(cfg.tokenizer_path))
    ready = os.path.join(cfg.assets, 'READY.json')
    if os.path.isfile(ready):
        with open(ready) as f:
            done = json.load(f)
        if done.get('spec') == spec:
            log(f'assets: cached in {cfg.assets}')
            return done
    t0 = time.time()
    s = SETTINGS[setting]
    log(f'assets: writing a synthetic ScienceQA-format data set to {cfg.data_root}')
    splits = write_synthetic_scienceqa(cfg.data_root, s['n_train'], s['n_val'], s['n_test'],
                                       seed=seed, image_size=cfg.vision_cfg['image_size'])
    with open(os.path.join(cfg.data_root, 'problems.json')) as f:
        problems = json.load(f)
    texts = problem_texts(problems, splits['train'], cfg.prompt_format)
    if cfg.tokenizer_path.endswith('.json'):  # Qwen2.5-style: no BOS, specials after the vocab
        style = cfg.get('tokenizer_style', 'qwen2.5')
        log(f'assets: training a byte-level BPE tokenizer.json ({style} special tokens)')
        train_hf_tokenizer(texts, os.path.dirname(cfg.tokenizer_path), style, vocab_size=
                           cfg.vocab_size - len(HF_TOKENIZER_STYLES[style]['specials']))
    else:
        log('assets: training a SentencePiece tokenizer on the training text')
        train_tokenizer(texts, cfg.tokenizer_path, vocab_size=cfg.vocab_size)
    tokenizer = build_tokenizer(cfg.tokenizer_path)
    check_tokenizer_vocab(tokenizer, cfg.vocab_size, 'the demo config')
    log(f'assets: pretraining the tiny ViT ({s["vit_steps"]} steps: colour and shape of drawn '
        'objects)')
    vit_acc = pretrain_vit(cfg.vit_file, dict(cfg.vision_cfg), steps=s['vit_steps'], seed=seed,
                           log=log)
    log(f'assets: ViT recognises colour and shape of {100 * vit_acc:.1f}% of fresh images')
    log(f'assets: pretraining the tiny LLaMA as a language model ({s["llm_steps"]} steps)')
    docs = problem_sequences(problems, splits['train'], tokenizer, cfg.prompt_format)
    lm_loss = pretrain_llm(cfg.llama_dir, docs, tokenizer, dict(cfg.llm_params),
                           steps=s['llm_steps'], seed=seed, log=log)
    done = dict(spec=spec, vit_accuracy=vit_acc, lm_loss=lm_loss, seconds=time.time() - t0)
    with open(ready, 'w') as f:
        json.dump(done, f, indent=1)
    log(f'assets: ready in {done["seconds"]:.0f} s')
    return done


def trained_demo(work_dir: str = 'work_dirs/lavin_tiny_demo',
                 config: str = DEFAULT_CONFIG) -> Tuple[Config, str]:
    """The config (asset paths set) and adapter checkpoint of a finished :func:`run_demo`.

    Raises:
        FileNotFoundError: ``work_dir`` holds no trained LaVIN preset; the message says to run
            ``python tools/demo.py``.
    """
    cfg = Config.fromfile(config)
    set_asset_paths(cfg, os.path.join(work_dir, 'assets'))
    run_dir = os.path.join(work_dir, 'lavin')
    last = os.path.join(run_dir, 'last_checkpoint')
    if not os.path.isfile(last):
        raise FileNotFoundError(f'no trained demo model in {work_dir} ({last} is missing): run '
                                '`python tools/demo.py` first (about 80 s on a CPU)')
    with open(last) as f:
        checkpoint = f.read().strip()
    if not os.path.isfile(checkpoint):  # recorded relative to where the demo ran
        checkpoint = os.path.join(run_dir, os.path.basename(checkpoint))
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'{last} names {checkpoint}, which does not exist: run '
                                '`python tools/demo.py` again')
    return cfg, checkpoint


def chance_levels(data_root: str, split: str = 'test') -> Dict[str, float]:
    """Expected accuracy (%) of uniform guessing, overall and for image / text-only questions."""
    with open(os.path.join(data_root, 'problems.json')) as f:
        problems = json.load(f)
    with open(os.path.join(data_root, 'pid_splits.json')) as f:
        qids = json.load(f)[split]
    groups = {'Avg': qids, 'IMG': [q for q in qids if problems[q]['image']],
              'TXT': [q for q in qids if not problems[q]['image']]}
    return {k: 100.0 * sum(1 / len(problems[q]['choices']) for q in v) / max(1, len(v))
            for k, v in groups.items()}


def train_and_test(cfg: Config, work_dir: str, cfg_options: Optional[dict] = None) -> Dict:
    """Train with the Runner, then evaluate the trained model on the test split."""
    from mma.engine import MMARunner
    from mma.engine.mmengine_fixes import apply_mmengine_fixes
    apply_mmengine_fixes()
    cfg = Config(cfg.to_dict())  # a copy: the Runner mutates its config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.test_evaluator.prediction_file = os.path.join(work_dir, 'predictions.json')
    runner = MMARunner.from_cfg(cfg)
    t0 = time.time()
    runner.train()
    train_s = time.time() - t0
    t0 = time.time()
    metrics = runner.test()
    metrics = {k.split('/')[-1]: v for k, v in metrics.items()}
    metrics.update(train_seconds=train_s, test_seconds=time.time() - t0)
    with open(os.path.join(work_dir, 'demo_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    return metrics


#: The text-only preset: no vision encoder, no visual tokens (the paper's "text adapters only").
TEXT_ONLY = {'model.vision': None, 'model.vit_adapter': None}


def run_demo(work_dir: str = 'work_dirs/lavin_tiny_demo', config: str = DEFAULT_CONFIG,
             setting: str = 'full', compare_text_only: bool = True,
             cfg_options: Optional[dict] = None,
             log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """The whole demo; returns ``{'lavin': metrics, 'text_only': metrics, 'chance': ...}``."""
    from mma.evaluation.scienceqa_metric import format_table
    cfg = Config.fromfile(config)
    set_asset_paths(cfg, os.path.join(work_dir, 'assets'))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    prepare_assets(cfg, setting, log=log)
    out = {'chance': chance_levels(cfg.data_root)}
    runs = [('lavin', None)] + ([('text_only', TEXT_ONLY)] if compare_text_only else [])
    for name, options in runs:
        log(f'== training and evaluating the {name} preset ==')
        out[name] = train_and_test(cfg, os.path.join(work_dir, name), options)
    log('\n== ScienceQA-format evaluation on held-out synthetic questions ==')
    for name, _ in runs:
        log(f'[{name}] (train {out[name]["train_seconds"]:.0f} s, test '
            f'{out[name]["test_seconds"]:.0f} s)\n{format_table(out[name])}')
    ch = out['chance']
    log(f'chance (uniform guess): Avg {ch["Avg"]:.2f}, IMG {ch["IMG"]:.2f}, TXT {ch["TXT"]:.2f} '
        f'(options per question: {", ".join(f"{k} {len(v)}" for k, v in CHOICES.items())})')
    log(files_summary(work_dir, [name for name, _ in runs]))
    return out


def files_summary(work_dir: str, runs) -> str:
    """Where the demo's files went: per run the adapter checkpoint, predictions, metrics and
    the full log (the console shows progress only)."""
    lines = [f'files in {work_dir}:', '  assets/  data set, tokenizer, pretrained backbones']
    for name in runs:
        run_dir = os.path.join(work_dir, name)
        with open(os.path.join(run_dir, 'last_checkpoint')) as f:
            ckpt = os.path.relpath(f.read().strip(), work_dir)
        logs = sorted(glob.glob(os.path.join(run_dir, '*', '*.log')))
        lines.append(f'  {name}/  checkpoint {ckpt}, predictions.json, demo_metrics.json, '
                     f'full log {os.path.relpath(logs[-1], work_dir) if logs else "-"}')
    return '\n'.join(lines)
