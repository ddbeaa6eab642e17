"""A tiny LLaVA-NeXT (random weights) and its processor, built locally: no download, seconds on CPU.

The tokenizer is a word-level vocabulary wrapped in PreTrainedTokenizerFast with a plain chat template; the
vision tower is a 2-layer CLIP on 32 px crops with LLaVA-NeXT's any-resolution grid up to 64 px.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | upper }}: "
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} "
    "{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
WORDS = [
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    "<image>",
    "SYSTEM:",
    "USER:",
    "ASSISTANT:",
    "Q1:",
    "A1:",
    "Q2:",
    "A2:",
    "Q3:",
    "A3:",
    "Caption:",
    "the",
    "a",
    "of",
    "is",
    "in",
    "image",
    "satellite",
    "forest",
    "farmland",
    "reservoir",
    "lake",
    "river",
    "water",
    "road",
    "urban",
    "field",
    "fields",
    "town",
    "green",
    "shows",
    "what",
    "there",
    ".",
    ",",
    "?",
    ":",
]
GRID = [[32, 32], [32, 64], [64, 32], [64, 64]]


def build_tiny_llava_next(folder: Path) -> Path:
    """Save a random tiny LlavaNextForConditionalGeneration + LlavaNextProcessor to ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {word: i for i, word in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.add_tokens(
        ["<image>"], special_tokens=True
    )  # so the expanded <image><image>... split per token
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=GRID
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"],
        ),
        image_token_index=vocab["<image>"],
        image_grid_pinpoints=GRID,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaNextForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
