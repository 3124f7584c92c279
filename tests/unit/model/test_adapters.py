import pytest
import torch
import torch.nn.functional as F
from tiny import FAMILIES

from polyneuron import PolyneuronError
from polyneuron.model.adapters import SUPPORTED_MODEL_TYPES, activation_modules, adapter_for
from polyneuron.model.batches import encode
from polyneuron.model.extract import collect_stats
from polyneuron.model.load import ModelSpec, load_prepared

ACTIVATIONS = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


def pre_activation_module(layer, family):
    """The linear map whose output the activation function reads, found independently."""
    return layer.mlp.c_fc if family == "gpt2" else layer.mlp.gate_proj


def activation_name(config):
    for key in ("hidden_activation", "hidden_act", "activation_function"):
        name = getattr(config, key, None)
        if name in ACTIVATIONS:
            return name
    raise AssertionError(f"no known activation in {config}")


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_hooks_act_fn_of_gate_for_each_family(family, tiny_models):
    model, tokenizer, device = load_prepared(
        ModelSpec(family, str(tiny_models[family]), device="cpu"), tiny_models[family]
    )
    texts = ['German: "Hund" → English:', 'Russian: "вода" → English:']
    encoded = encode(tokenizer, texts)
    stats = collect_stats(model, tokenizer, encoded, device)

    # independently: capture gate_proj (c_fc) outputs in a full forward, apply the activation
    from polyneuron.model.adapters import decoder_layers

    layers = decoder_layers(model)
    captured = []
    handles = [
        pre_activation_module(layer, family).register_forward_hook(
            lambda _m, _i, out: captured.append(out.detach())
        )
        for layer in layers
    ]
    act = ACTIVATIONS[activation_name(model.config)]
    expected_sum = torch.zeros_like(stats.act_sum)
    expected_active = torch.zeros_like(stats.n_active)
    with torch.no_grad():
        for e in encoded:
            captured.clear()
            model(input_ids=torch.tensor([e.input_ids]))
            mask = torch.tensor(e.counted)
            for i, pre in enumerate(captured):
                values = act(pre[0][mask]).double()
                expected_sum[i] += values.sum(0)
                expected_active[i] += (values > 0).sum(0)
    for h in handles:
        h.remove()
    assert len(activation_modules(model)) == model.config.num_hidden_layers
    assert torch.allclose(stats.act_sum, expected_sum, atol=1e-4)
    assert torch.equal(stats.n_active, expected_active)


def test_unsupported_family_fails_naming_the_supported_ones():
    with pytest.raises(PolyneuronError) as err:
        adapter_for("bert")
    assert "'bert'" in str(err.value)
    for model_type in ("gemma3_text", "llama", "qwen2", "mistral", "gpt2"):
        assert model_type in str(err.value)
    assert set(SUPPORTED_MODEL_TYPES) >= {
        "gemma",
        "gemma2",
        "gemma3_text",
        "llama",
        "mistral",
        "qwen2",
        "gpt2",
    }
