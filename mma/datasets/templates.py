"""Prompt templates: how a sample's prompt and answer become the text the LLM reads.

A template is data: the prefixes before the visual tokens (image samples) or in their place
(text-only samples), the formats of the prompt and of the answer, and whether each piece starts a
new word. :class:`~mma.datasets.TokenizeForLaVIN` tokenises ``[BOS] prefix [visual tokens]
prompt answer [EOS]`` by it, each piece on its own. Templates are registered by name
(:func:`register_prompt_template`) and chosen in the config
(``dict(type='TokenizeForLaVIN', template='llava_v1')``).

- ``'lavin'`` (the default): LaVIN's ``[BOS] Image: v1..vk {prompt} {answer}[EOS]`` (the original
  LaVIN code; ``Image: N/A`` in place of the visual tokens).
- ``'llava_v1'``: LLaVA-1.5's conversation (``conv_vicuna_v1`` of github.com/haotian-liu/LLaVA,
  the chat template of transformers' llava-hf processors with the system text): ``{system} USER:
  <image>\\n{prompt} ASSISTANT: {answer}</s>``. As LLaVA's ``tokenizer_image_token``, the text
  before and after ``<image>`` is tokenised apart.
"""
from dataclasses import dataclass
from typing import Dict

#: LLaVA-1.5's (Vicuna v1) system text.
VICUNA_V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the human's "
                    "questions.")


@dataclass(frozen=True)
class PromptTemplate:
    """One way to lay out a sample's text.

    Args:
        name: Registered name.
        image_prefix: Text before the visual tokens of an image sample.
        text_prefix: Text of a text-only sample in their place.
        image_prompt, text_prompt: ``{prompt}`` formats after the prefix.
        answer: ``{answer}`` format (the tokenizer's EOS follows it).
        new_word: The prompt and the answer are tokenised as new words
            (:meth:`~mma.datasets.TokenizeForLaVIN.encode_piece`, LaVIN); False: verbatim.
    """
    name: str
    image_prefix: str
    text_prefix: str
    image_prompt: str = '{prompt}'
    text_prompt: str = '{prompt}'
    answer: str = '{answer}'
    new_word: bool = True


PROMPT_TEMPLATES: Dict[str, PromptTemplate] = {}


def register_prompt_template(template: PromptTemplate, force: bool = False) -> PromptTemplate:
    """Add a template under its name (an error if taken, unless ``force``)."""
    if template.name in PROMPT_TEMPLATES and not force:
        raise ValueError(f'prompt template {template.name!r} is already registered')
    PROMPT_TEMPLATES[template.name] = template
    return template


def prompt_template(name: str) -> PromptTemplate:
    """The registered template ``name``; a KeyError listing the known ones otherwise."""
    if name not in PROMPT_TEMPLATES:
        raise KeyError(f'unknown prompt template {name!r}; registered: '
                       f'{", ".join(sorted(PROMPT_TEMPLATES))}')
    return PROMPT_TEMPLATES[name]


register_prompt_template(PromptTemplate('lavin', image_prefix='Image: ', text_prefix='Image: N/A'))
register_prompt_template(PromptTemplate(
    'llava_v1', image_prefix=VICUNA_V1_SYSTEM + ' USER: ', text_prefix=VICUNA_V1_SYSTEM + ' USER:',
    image_prompt='\n{prompt} ASSISTANT:', text_prompt=' {prompt} ASSISTANT:', answer=' {answer}',
    new_word=False))
