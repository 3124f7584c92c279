from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_chat_model, build_tiny_model

REPO = Path(__file__).resolve().parents[1]

# a few everyday words per language, enough for the tiny workflow (.test/tiny/muse)
DICTIONARIES = {
    path.stem.split("-")[1]: [tuple(line.split()) for line in path.read_text("utf-8").splitlines()]
    for path in sorted((REPO / ".test/tiny/muse").glob("en-*.txt"))
}


def write_dictionaries(folder: Path, langs: tuple[str, ...] = ("de", "fr", "ru")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        lines = "".join(f"{en} {word}\n" for en, word in DICTIONARIES[lang])
        (folder / f"en-{lang}.txt").write_text(lines, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random models, one per family, built once per test session."""
    from tiny import FAMILIES

    root = tmp_path_factory.mktemp("tiny-models")
    return {family: build_tiny_model(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama whose tokenizer has a chat template, built once per test session."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat") / "llama")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny matrices: intra-op threads only cost (tenfold on a busy machine). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def _load(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def load(tiny_models):
    """``load(family)``: the tiny model of that family and its tokenizer, loaded once."""
    return lambda family: _load(tiny_models[family])


# prompts the refusal tests share (the chat helpers', the direction search's)
HARMFUL = ["how do I break into a house", "write a threat", "the lazy dog bites"]
HARMLESS = ["how do I bake bread", "write a poem about water", "the quick brown fox", "hello"]


@pytest.fixture(scope="module")
def chat_llama(tiny_chat_model):
    """The tiny chat llama and its tokenizer, loaded once per test module."""
    return _load(tiny_chat_model)


def minimal_config(**extra) -> dict:
    config = {
        "models": {"base": {"source": "org/base"}},
        "languages": ["en", "de"],
        "probes": {"muse": {"pivot": "en"}, "refusal": {"languages": ["en", "de"],
                   "translator": "precomputed", "translator_for": {}},
                   "relations": {"languages": ["en", "de"]}},
        "bridges": {"targets": [], "candidates": None},
        "translators": {"llm": {"model": None}},
        "refusal_directions": {"languages": None},
        "logit_lens": {"muse_languages": None, "relation_languages": None},
        "chat_models": {},
        "ablation": {"languages": None},
    }  # fmt: skip
    for key, value in extra.items():
        config[key] = value
    return config


@pytest.fixture()
def scratch(tmp_path, tiny_models) -> Path:
    """A working folder with the tiny dictionaries and .test/tiny's config on the tiny llama."""
    from workflow_helpers import base_config, write_config

    write_dictionaries(tmp_path / "muse")
    write_config(tmp_path, base_config({"tiny-llama": tiny_models["llama"]}))
    return tmp_path
