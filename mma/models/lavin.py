"""LaVIN: a frozen LLaMA and a frozen CLIP ViT joined by Mixture-of-Modality Adaptation."""
from typing import Dict, List, Optional, Set, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mma.adapters.utils import declared_trainable_names, set_trainable
from mma.checkpoint_file import AllowUnsafe
from mma.registry import ENCODERS, LLMS, MODELS, PROJECTORS, TOKENIZERS
from mma.routers.routing import RoutingContext
from mma.sequence import IGNORE_INDEX, num_positions, pack, pad_rows, row_text, text_lengths
from mma.slots import AdapterSlot

from .generation import GenerationConfig, GenerationOutput, stop_ids
from .generation import generate as _generate
from .entry_helpers import as_dict, build_adapter, cast_frozen, init_report_to_log_file_only
from .masks import modality_mask
from .modality import context_routing
from .packing import packed_hidden_states

__all__ = ['IGNORE_INDEX', 'LaVIN']


@MODELS.register_module()
class LaVIN(BaseModel):
    """LaVIN / MMA: the model of "Cheap and Quick" (NeurIPS 2023), built from sub-configs.

    Sequence (:mod:`mma.sequence`, the paper's Fig. 2): ``[modality token] [BOS] "Image: " v1..vk
    prompt answer [EOS]`` for image samples and ``[modality token] [BOS] "Image: N/A" prompt
    answer [EOS]`` for text-only ones. The data pipeline tokenises the text (with the image prefix) and says where the
    visual tokens go (``visual_pos``); this model inserts them, prepends the modality token, and
    masks attention so that no later position attends to the modality token: it acts only through
    the routers, whose input is its hidden state.

    Args:
        llm: Config of the LLM backbone (``LLMS``).
        vision: Config of the vision encoder (``ENCODERS``); None for a text-only model, which
            treats every sample as text-only (modality token 0, no visual tokens; images given
            are ignored).
        llm_adapter: Config of the adapter put into each LLM block (``ADAPTERS``; ``in_features``
            is filled in); None for no LLM adapters.
        llm_adapter_placement: ``'attn'`` (LaVIN), ``'ffn'``, ``'block'``, ``'linear:q,v'``
            (LoRA-like adapters around the named projections) or ``'prefix:N'`` (see the LLM's
            ``adapter_slots``).
        vit_adapter: Config of the adapter put into each ViT block; None for none.
        vit_adapter_placement: ``'attn'`` (before attention, LaVIN), ``'ffn'`` or ``'block'``.
        projector: Config of the visual projector (``PROJECTORS``; ``in_features`` and
            ``out_features`` are filled in): LaVIN's ``dict(type='LaVINProjector', hidden=128)``
            (the default) or LLaVA-1.5's ``dict(type='MLPProjector')``.
        frozen_dtype: Store the frozen backbone weights in this dtype (``'bfloat16'``,
            ``'float16'``), keeping the trainable tensors in fp32 — no fp32 copy of a frozen
            weight exists. Run with AMP (autocast) when set.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
        tokenizer: Tokenizer config (``TOKENIZERS``) or object; needed by ``mode='predict'`` to
            turn generated ids into text.
        generation_cfg: :class:`~mma.models.generation.GenerationConfig` fields for
            ``mode='predict'`` (e.g. ``max_new_tokens=64``, ``stop_pattern`` for early stop).
        adapter_checkpoint: Adapter weights loaded by :meth:`init_weights` after the base
            weights: an mma adapter checkpoint, an mmengine checkpoint or a reference LaVIN
            ``checkpoint-N.pth`` (see :mod:`mma.models.adapter_checkpoint`).
        modality_in_sequence: True (LaVIN): the modality token is position 0 of every row. False:
            rows are the base model's own (LLaVA-1.5: ids and positions unchanged) and the
            routers read the token run alone (:mod:`mma.models.modality`, the same weights).
        allow_unsafe_load: Permission to unpickle ``adapter_checkpoint`` fully (True, or trusted
            paths; :mod:`mma.checkpoint_file`); mma's Runner passes the config's.
    """

    def __init__(self, llm: dict, vision: Optional[dict] = None,
                 llm_adapter: Optional[dict] = None, llm_adapter_placement: str = 'attn',
                 vit_adapter: Optional[dict] = None, vit_adapter_placement: str = 'attn',
                 projector: Optional[dict] = None,
                 frozen_dtype: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, tokenizer: Optional[dict] = None,
                 generation_cfg: Optional[dict] = None,
                 adapter_checkpoint: Optional[str] = None, modality_in_sequence: bool = True,
                 allow_unsafe_load: AllowUnsafe = False):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.modality_positions = int(bool(modality_in_sequence))  # columns before the text
        self.adapter_checkpoint = adapter_checkpoint
        self.allow_unsafe_load = allow_unsafe_load
        self.llm = LLMS.build(llm)
        dim = self.llm.dim
        self.vision = ENCODERS.build(vision) if vision is not None else None
        self.llm_adapter_placement = llm_adapter_placement
        self.vit_adapter_placement = vit_adapter_placement
        if llm_adapter is not None:
            for slot in self.llm.adapter_slots(llm_adapter_placement):
                slot.insert(build_adapter(llm_adapter, dim, slot))
        if self.vision is not None:
            if vit_adapter is not None:
                for slot in self.vision.adapter_slots(vit_adapter_placement):
                    slot.insert(build_adapter(vit_adapter, self.vision.width, slot))
            self.projector = PROJECTORS.build(dict(
                projector or dict(type='LaVINProjector', hidden=128), in_features=self.vision.width,
                out_features=dim))
        self.modality_embedding = nn.Embedding(2, dim)
        set_trainable(self, self.trainable_names())
        if frozen_dtype is not None:
            cast_frozen(self, frozen_dtype)
        # Built on first use: the file need not exist to build (or count) the model.
        self._tokenizer = tokenizer
        self.generation_cfg = dict(generation_cfg or {})

    @property
    def tokenizer(self):
        """The tokenizer of the config, built on first access (None if none is configured)."""
        if isinstance(self._tokenizer, dict):
            self._tokenizer = TOKENIZERS.build(self._tokenizer)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value):
        self._tokenizer = value

    # ----------------------------------------------------------------------------------------
    @property
    def num_visual_tokens(self) -> int:
        return self.vision.num_features if self.vision is not None else 0

    def encode_images(self, images: Tensor) -> Tensor:
        """images (N, 3, H, W) -> visual tokens (N, k, dim) in the LLM's embedding space."""
        vision_trains = any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and vision_trains):
            feats = self.vision(images)  # (N, k, width); forward = features()
        return self.projector(feats.to(self.projector.fc1.weight.dtype))

    def assemble(self, input_ids: Tensor, has_image: Tensor, visual_pos: Optional[Tensor] = None,
                 images: Optional[Tensor] = None,
                 labels: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        """Build the LLM input sequence (vectorised: no per-sample loops).

        Args:
            input_ids: (B, L) text tokens, right-padded, ``[BOS] prefix prompt answer [EOS]``.
            has_image: (B,) bool.
            visual_pos: (B,) index in ``input_ids`` before which the visual tokens go (image
                samples; ignored for the others).
            images: (N, 3, H, W), one per image sample in batch order, or their visual tokens
                (N, k, D) computed beforehand with :meth:`encode_images`.
            labels: (B, L) target ids aligned with ``input_ids``, ``IGNORE_INDEX`` elsewhere.

        Returns:
            ``embeds`` (B, T, D) with T = m + L + k·any(has_image) (m: :attr:`modality_positions`),
            ``labels`` (B, T) or None, ``has_image`` (B,) as the model sees it.
        """
        b, length = input_ids.shape
        has_image = has_image.bool()
        if self.vision is None:  # a text-only model sees every sample as text-only (modality 0)
            has_image = torch.zeros_like(has_image)
        text = self.llm.embed(input_ids)  # (B, L, D)
        k = self.num_visual_tokens if (images is not None and has_image.any()) else 0
        body_len = length + k
        j = torch.arange(length, device=input_ids.device)
        dest = j.expand(b, length)
        if k:
            after = has_image[:, None] & (j[None] >= visual_pos[:, None])
            dest = dest + k * after  # (B, L): where each text token lands in the body
        body = text.new_zeros(b, body_len, text.shape[-1]).scatter(
            1, dest[..., None].expand_as(text), text)
        if k:
            vis = images if images.dim() == 3 else self.encode_images(images)
            vis = vis.to(body.dtype)  # (N, k, D)
            rows = has_image.nonzero().squeeze(1)
            cols = visual_pos[rows][:, None] + torch.arange(k, device=body.device)  # (N, k)
            body = body.index_put((rows[:, None].expand_as(cols), cols), vis)
        m = self.modality_positions
        embeds = body
        if m:
            mod = self.modality_embedding(has_image.long()).to(body.dtype)[:, None]  # (B, 1, D)
            embeds = torch.cat([mod, body], dim=1)
        out_labels = None
        if labels is not None:
            out_labels = labels.new_full((b, m + body_len), IGNORE_INDEX)
            out_labels[:, m:] = out_labels[:, m:].scatter(1, dest, labels)
        return dict(embeds=embeds, labels=out_labels, has_image=has_image)

    @staticmethod
    def attention_mask(t: int, device: torch.device) -> Tensor:
        """(1, 1, T, T) bool: causal, and no position > 0 attends to the modality token 0
        (:func:`~mma.models.masks.modality_mask`, the rule generation uses too)."""
        return modality_mask(torch.zeros(1, dtype=torch.long, device=device), 0, t, t)

    def hidden_states(self, embeds: Tensor, ctx: Optional[RoutingContext] = None,
                      has_image: Optional[Tensor] = None) -> Tensor:
        """Run the LLM on assembled (B, T, D) embeddings; routing input is token 0, or without
        a modality token in the sequence, the token of ``has_image`` (B,) run alone."""
        b, t, _ = embeds.shape
        if not self.modality_positions:  # causal attention over the base model's own rows
            if ctx is None and has_image is None:
                raise ValueError('hidden_states: a model without the modality token in the '
                                 "sequence needs has_image (assemble's) or a routing context")
            return self.llm(embeds, ctx=ctx or context_routing(self.llm, self.modality_embedding,
                                                               has_image))
        if ctx is None:
            ctx = RoutingContext(token_index=embeds.new_zeros(b, dtype=torch.long))
        return self.llm(embeds, mask=self.attention_mask(t, embeds.device), ctx=ctx)

    # ----------------------------------------------------------------------------------------
    def forward(self, inputs: dict, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], Tensor, List]:
        """mmengine entry point.

        ``inputs`` holds ``input_ids``, ``has_image``, ``visual_pos``, ``images`` and, for
        ``mode='loss'``, ``labels`` (see :meth:`assemble`). ``'loss'`` returns ``{'loss': ...}``
        (next-token cross entropy on answer tokens only, output head computed only there);
        ``'tensor'`` returns the logits (B, T, V) over the assembled sequence. A batch of
        :func:`~mma.datasets.mma_pack_collate` trains on packed rows (:mod:`mma.models.packing`).
        """
        seq = self.assemble(inputs['input_ids'], inputs['has_image'], inputs.get('visual_pos'),
                            inputs.get('images'), inputs.get('labels'))
        if mode == 'loss' and inputs.get('pack_max_tokens'):  # mma_pack_collate: packed rows
            if not self.modality_positions:
                raise ValueError('sequence packing (mma_pack_collate) needs the modality token in '
                                 'the sequence (modality_in_sequence=True): use mma_collate for '
                                 'this model')
            hidden, seq['labels'], _ = packed_hidden_states(
                self.llm, seq['embeds'], seq['labels'], self.prompt_lengths(inputs),
                inputs['pack_max_tokens'], inputs.get('pack_mask', 'auto'))
        else:
            hidden = self.hidden_states(seq['embeds'], has_image=seq['has_image'])
        if mode == 'tensor':
            return self.llm.head(hidden)
        if mode == 'loss':
            if seq['labels'] is None:
                raise ValueError("LaVIN.forward(mode='loss') needs inputs['labels']")
            return self.loss(hidden, seq['labels'], inputs.get('num_loss_tokens'))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'tensor' or 'predict'")

    def loss(self, hidden: Tensor, labels: Tensor,
             normalizer: Optional[Union[Tensor, float]] = None) -> Dict[str, Tensor]:
        """Summed cross entropy over answer tokens divided by ``normalizer`` (default: their
        count). The head runs only on positions that have a target."""
        targets = labels[:, 1:]
        sel = targets != IGNORE_INDEX
        logits = self.llm.head(hidden[:, :-1][sel])  # (N, V)
        total = F.cross_entropy(logits.float(), targets[sel], reduction='sum')
        if normalizer is None:
            normalizer = sel.sum().clamp(min=1)
        return dict(loss=total / normalizer)

    # ---------------------------------------------------------------------------- inference --
    def prompt_lengths(self, inputs: dict) -> Tensor:
        """(B,) length of each assembled row: modality token + text (+ visual tokens)."""
        ids, lengths = inputs['input_ids'], text_lengths(inputs)
        k = self.num_visual_tokens if inputs.get('images') is not None else 0
        return num_positions(lengths.to(ids.device), inputs['has_image'], k,
                             self.modality_positions)

    @torch.no_grad()
    def generate(self, inputs: dict, on_text=None, return_logits: bool = False,
                 **cfg) -> GenerationOutput:
        """Continue a batch of prompts (``inputs`` as for :meth:`forward`, without answers).

        Keyword arguments override :attr:`generation_cfg` (see
        :class:`~mma.models.generation.GenerationConfig`); ``on_text(i, text)`` streams.
        """
        gcfg = GenerationConfig(**{**self.generation_cfg, **cfg})
        seq = self.assemble(inputs['input_ids'], inputs['has_image'], inputs.get('visual_pos'),
                            inputs.get('images'))
        tok = self.tokenizer
        routing = None if self.modality_positions else context_routing(
            self.llm, self.modality_embedding, seq['has_image']).cache
        return _generate(self.llm, seq['embeds'], self.prompt_lengths(inputs), gcfg,
                         decode=tok.decode if tok is not None else None,
                         eos_id=stop_ids(tok) if tok is not None else None, on_text=on_text,
                         return_logits=return_logits, routing=routing,
                         encode=tok.encode if tok is not None else None)

    @torch.no_grad()
    def choice_logliks(self, inputs: dict) -> List[List[float]]:
        """Summed log-likelihood of each answer choice given its sample's prompt.

        ``inputs['choice_ids']`` holds, per sample, a list of token-id lists (one per choice);
        each choice is appended to the prompt as an answer (:func:`mma.sequence.pack`, rows
        batched by :func:`mma.sequence.pad_rows`, as the data pipeline does) and scored by one
        teacher-forced forward.
        """
        text_lengths(inputs)
        rows, owner = [], []
        for i, choices in enumerate(inputs['choice_ids']):
            has_image = bool(inputs['has_image'][i])
            pos = int(inputs['visual_pos'][i]) if has_image else 0
            ids = row_text(inputs, i)  # [BOS] prefix prompt; the visual tokens go at ``pos``
            for c in choices:
                rows.append(pack(ids[:pos], [], ids[pos:], [int(t) for t in c], has_image))
                owner.append(i)
        batch = pad_rows(rows)
        own = torch.tensor(owner, device=inputs['input_ids'].device)
        images = inputs.get('images')
        if images is not None:  # one image row per (image sample, choice)
            img_idx = torch.cumsum(inputs['has_image'].long(), 0) - 1
            images = images[img_idx[own][inputs['has_image'].bool()[own]]]
        batch = {k: v.to(own.device) for k, v in batch.items()}
        seq = self.assemble(batch['input_ids'], batch['has_image'], batch['visual_pos'], images,
                            batch['labels'])
        hidden = self.hidden_states(seq['embeds'], has_image=seq['has_image'])
        logp = torch.log_softmax(self.llm.head(hidden).float(), -1)
        targets = seq['labels'][:, 1:]
        sel = targets != IGNORE_INDEX
        tok_logp = logp[:, :-1].gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
        scores = (tok_logp * sel).sum(1).tolist()
        out: List[List[float]] = [[] for _ in inputs['choice_ids']]
        for i, s in zip(owner, scores):
            out[i].append(s)
        return out

    def predict(self, inputs: dict, data_samples: Optional[List] = None) -> List:
        """Predict a batch the way its data set declares (``inputs['prediction']``, set by
        :func:`~mma.datasets.mma_collate` from the samples; default ``'generate'``).

        Returns one dict per sample: its data sample's fields plus ``pred_text``,
        ``pred_tokens`` and ``num_generated`` (``'generate'``) or ``choice_logliks``
        (``'score_choices'``).
        """
        how = inputs.get('prediction') or 'generate'
        predictors = dict(generate=self._predict_generate, score_choices=self._predict_choices)
        if how not in predictors:
            raise ValueError(f'unknown prediction {how!r}; expected one of {sorted(predictors)}')
        b = inputs['input_ids'].shape[0]
        samples = [as_dict(s) for s in data_samples] if data_samples else [{} for _ in range(b)]
        predictors[how](inputs, samples)
        return samples

    def _predict_choices(self, inputs: dict, samples: List[dict]) -> None:
        if inputs.get('choice_ids') is None:
            raise ValueError("prediction 'score_choices' needs inputs['choice_ids'] (one token-id "
                             'list per choice and sample)')
        for s, ll in zip(samples, self.choice_logliks(inputs)):
            s['choice_logliks'] = ll

    def _predict_generate(self, inputs: dict, samples: List[dict]) -> None:
        out = self.generate(inputs)
        for i, s in enumerate(samples):
            s.update(pred_text=out.texts[i], pred_tokens=out.tokens[i],
                     num_generated=out.num_generated[i])

    # ----------------------------------------------------------------------------------------
    @property
    def may_leave_parameters_unused(self) -> bool:
        """Whether a training step can leave a trainable tensor without a gradient (DDP's
        ``find_unused_parameters``, set from this by :class:`~mma.engine.MMARunner`): a batch
        without image samples does not reach the projector and the ViT adapters."""
        return self.vision is not None

    def adapter_slots(self) -> List[AdapterSlot]:
        """The slots of the configured placements in the LLM and the vision encoder (filled or
        not)."""
        slots = self.llm.adapter_slots(self.llm_adapter_placement)
        if self.vision is not None:
            slots = slots + self.vision.adapter_slots(self.vit_adapter_placement)
        return slots

    def trainable_modules(self) -> List[nn.Module]:
        """What trains: the adapters in the slots, the visual projector and the modality
        embedding (each adapter says which of its tensors train)."""
        mods = [s.adapter for s in self.adapter_slots() if s.adapter is not None]
        if self.vision is not None:
            mods.append(self.projector)
        return mods + [self.modality_embedding]

    def trainable_names(self) -> Set[str]:
        """State-dict names of the trainable tensors: what trains is what checkpoints hold."""
        return declared_trainable_names(self, self.trainable_modules())

    def trainable_state_dict(self) -> Dict[str, Tensor]:
        """The trainable tensors only: what mma saves in checkpoints."""
        names = self.trainable_names()
        return {k: v for k, v in self.state_dict().items() if k in names}

    def init_weights(self) -> None:
        """Load the base weights from the files named in the config (LLM, CLIP), then the
        adapter weights of ``adapter_checkpoint`` if set. A model built on the meta device
        skips mmengine's ``init_cfg`` pass (it reads every parameter) and is filled by the files.

        A configured :attr:`tokenizer` must match the LLM's vocabulary (``ValueError`` naming
        both otherwise): ids of another vocabulary would silently mean other tokens.
        """
        if not any(p.is_meta for p in self.parameters()):
            with init_report_to_log_file_only():
                super().init_weights()
        for part in (self.llm, self.vision, getattr(self, 'projector', None)):
            if part is not None and hasattr(part, 'load_pretrained'):
                part.load_pretrained()
        if self._tokenizer is not None:
            from mma.llms.checkpoints import check_tokenizer_vocab
            check_tokenizer_vocab(self.tokenizer, self.llm.vocab_size,
                                  'model.llm (the LLM weights)')
        if self.adapter_checkpoint is not None:
            from .adapter_checkpoint import load_adapter_checkpoint
            load_adapter_checkpoint(self, self.adapter_checkpoint,
                                    allow_unsafe=self.allow_unsafe_load)

