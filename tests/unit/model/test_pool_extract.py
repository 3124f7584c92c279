"""The relation neurons' pool: per-example means of the MLP projections' outputs (gate, up,
down side by side in a layer's row) against a manual forward with hooks, and GPT-2's pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.model.adapters import (
    decoder_layers,
    module_outputs,
    module_widths,
    reference_pool,
)
from polyneuron.model.batches import encode
from polyneuron.model.extract import collect_example_means

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
TEXTS = ["the quick brown fox", "the lazy dog", "Wasser", "le renard brun saute par-dessus"]


def manual_means(model, tokenizer, text: str, paths: list[str]) -> np.ndarray:
    """One text alone: every layer's outputs of the modules at ``paths`` (attributes of a
    block), averaged over the non-special tokens, side by side: [layer, sum of widths]."""
    enc = tokenizer(text, return_special_tokens_mask=True)
    counted = torch.tensor(enc["special_tokens_mask"]) == 0
    captured = {}
    handles = []
    for layer, block in enumerate(decoder_layers(model)):
        for path in paths:
            module = block
            for name in path.split("."):
                module = getattr(module, name)

            def hook(_m, _i, out, key=(layer, path)):
                captured[key] = out[0, counted].mean(0)

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([enc["input_ids"]]))
    finally:
        for handle in handles:
            handle.remove()
    n_layers = len(decoder_layers(model))
    return np.stack([torch.cat([captured[layer, p] for p in paths]).numpy()
                     for layer in range(n_layers)])  # fmt: skip


@pytest.mark.parametrize(
    ("family", "paths"),
    [
        ("llama", ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]),
        ("gpt2", ["mlp.c_fc", "mlp.c_proj"]),  # no gate: in-projection as up, out as down
    ],
)
def test_pool_means_match_a_manual_forward_with_hooks(load, family, paths):
    model, tokenizer = load(family)
    modules = reference_pool(model)
    assert modules == (("gate", "up", "down") if family == "llama" else ("up", "down"))
    widths = module_widths(model, modules)
    assert widths["down"] == model.config.hidden_size  # (up's width: the shapes compared below)
    encoded = encode(tokenizer, TEXTS)
    out = np.zeros((len(TEXTS), len(decoder_layers(model)), sum(widths.values())), "float32")
    collect_example_means(model, tokenizer, encoded, CPU, out, max_batch_size=2, modules=modules)
    for i, text in enumerate(TEXTS):  # batched and padded against each text alone
        np.testing.assert_allclose(out[i], manual_means(model, tokenizer, text, paths),
                                   rtol=1e-4, atol=1e-5)  # fmt: skip


def test_the_activation_pool_is_the_default_and_a_missing_projection_is_named(load):
    model, tokenizer = load("gpt2")
    with pytest.raises(PolyneuronError, match=r"gpt2 model GPT2LMHeadModel has no 'gate'"):
        module_outputs(model, ["gate"])
    encoded = encode(tokenizer, TEXTS[:2])
    out = np.zeros((2, len(decoder_layers(model)), sum(module_widths(model, ["act"]).values())),
                   "float32")  # fmt: skip
    collect_example_means(model, tokenizer, encoded, CPU, out)
    np.testing.assert_allclose(out[1], manual_means(model, tokenizer, TEXTS[1], ["mlp.act"]),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
