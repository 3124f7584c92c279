"""Tiny random models of each supported family, built from a config in the test suite."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

CORPUS = [
    'English: "water" → German:',
    'German: "Wasser" → English:',
    'French: "eau" → English:',
    'Spanish: "agua" → English:',
    'Russian: "вода" → English:',
    'Chinese: "水" → English:',
    "the quick brown fox jumps over the lazy dog",
    "der schnelle braune Fuchs springt über den faulen Hund",
    "le renard brun rapide saute par-dessus le chien paresseux",
]


def tiny_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a few lines: any text encodes, with a BOS token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def family_config(family: str, vocab_size: int) -> PretrainedConfig:
    common = {"vocab_size": vocab_size, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    llama_like = {
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
        **common,
    }
    gemma_like = {**llama_like, "head_dim": 8}
    configs = {
        "llama": lambda: LlamaConfig(**llama_like),
        "mistral": lambda: MistralConfig(**llama_like),
        "qwen2": lambda: Qwen2Config(**llama_like),
        "gemma": lambda: GemmaConfig(**gemma_like),
        "gemma2": lambda: Gemma2Config(**gemma_like),
        "gemma3": lambda: Gemma3TextConfig(**gemma_like, sliding_window=16),
        "gpt2": lambda: GPT2Config(
            n_embd=32, n_layer=3, n_head=4, n_inner=48, n_positions=128, **common
        ),
    }
    return configs[family]()


FAMILIES = ("gemma", "gemma2", "gemma3", "llama", "mistral", "qwen2", "gpt2")


def build_tiny_model(folder: Path, family: str = "llama", seed: int = 0) -> Path:
    """Save a random ``family`` model and its tokenizer as an HF folder; returns ``folder``."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(family_config(family, len(tokenizer)))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


MT_CODES = {
    "m2m100": ["__en__", "__de__", "__fr__", "__ko__"],
    "nllb": ["eng_Latn", "deu_Latn", "fra_Latn", "kor_Hang"],
    "marian": [">>de<<", ">>fr<<", ">>kor<<"],
    "pair": [],
}


def build_tiny_mt_model(folder: Path, style: str = "m2m100", seed: int = 0) -> Path:
    """A random M2M100-architecture seq2seq model whose tokenizer carries ``style``'s language
    codes (M2M100 ``__de__``, NLLB ``deu_Latn``, Marian ``>>de<<`` or none); returns ``folder``."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": MT_CODES[style]})
    torch.manual_seed(seed)
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=48,
        decoder_ffn_dim=48,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    M2M100ForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# A minimal chat template: the user's message between role markers, then the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def build_tiny_chat_model(folder: Path, family: str = "llama", seed: int = 0) -> Path:
    """A tiny random ``family`` model whose tokenizer carries :data:`CHAT_TEMPLATE`."""
    build_tiny_model(folder, family, seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder
