"""Task neurons: gradient attribution against finite differences, batching, selection, overlap."""

import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import torch
from tiny import FAMILIES
from torch.overrides import TorchFunctionMode

from polyneuron import PolyneuronError
from polyneuron.model.adapters import activation_modules
from polyneuron.model.load import ModelSpec, load_prepared
from polyneuron.neurons.select import top_share_mask
from polyneuron.neurons.tasks import (
    Attribution,
    attribute,
    encode_tasks,
    neuron_frame,
    overlap_frame,
    read_attribution,
    write_attribution,
)

REPO = Path(__file__).resolve().parents[3]

PROMPTS = [
    'English: "water" → German:\nAnswer:',
    "the quick brown fox\nAnswer:",
    'French: "eau" → English:\nAnswer:',
]
TARGETS = ["Wasser", "jumps over the lazy dog", "water"]


CASTS = {torch.Tensor.float, torch.Tensor.to, torch.Tensor.type, torch.Tensor.type_as}


class Float64Everywhere(TorchFunctionMode):
    """Float64 tensors ignore casts to float32. The families' RMS norms, rotary embeddings and
    eager attention softmax compute in float32 even in a float64 model; that rounding (~1e-7)
    would swamp a finite difference with ε = 1e-4."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        first = args[0] if args else None
        wide = isinstance(first, torch.Tensor) and first.dtype == torch.float64
        if wide and kwargs.get("dtype") == torch.float32:  # e.g. softmax(..., dtype=float32)
            kwargs["dtype"] = torch.float64
        out = func(*args, **kwargs)
        if wide and func in CASTS and isinstance(out, torch.Tensor) and out.dtype == torch.float32:
            return first.to(out.device)
        return out


def finite_difference(model, encoded, layer, neuron, eps=1e-4):
    """dL/dε at ε = 0 when neuron ``(layer, neuron)`` is scaled by 1 + ε (central)."""
    up = reference_loss(model, encoded, (layer, neuron, 1 + eps))
    down = reference_loss(model, encoded, (layer, neuron, 1 - eps))
    return float((up - down) / (2 * eps))


def load(folder, dtype=torch.float64):
    model, tokenizer, device = load_prepared(ModelSpec("tiny", str(folder), device="cpu"), folder)
    return model.to(dtype), tokenizer, device


def reference_loss(model, encoded, scale=None):
    """Σ −log p(target token | prefix) from the full model's logits over one right-padded batch;
    ``scale = (layer, neuron, factor)`` multiplies that neuron at every non-padding position."""
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    attention = torch.zeros(len(encoded), width, dtype=torch.long)
    target = torch.zeros(len(encoded), width, dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        attention[row, : len(e.input_ids)] = 1
        target[row, : len(e.input_ids)] = torch.tensor(e.counted)
    handle = None
    if scale is not None:
        layer, neuron, factor = scale

        def hook(_module, _inputs, output):
            output = output.clone()
            output[..., neuron] = torch.where(
                attention.bool(), output[..., neuron] * factor, output[..., neuron]
            )
            return output

        handle = activation_modules(model)[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
    finally:
        if handle is not None:
            handle.remove()
    logp = torch.log_softmax(logits.double(), dim=-1)
    total = torch.zeros((), dtype=torch.float64)
    for row, e in enumerate(encoded):
        for pos in range(1, len(e.input_ids)):
            if target[row, pos]:
                total -= logp[row, pos - 1, ids[row, pos]]
    return total


@pytest.mark.parametrize("family", FAMILIES)
def test_attribution_is_the_derivative_of_the_loss_under_neuron_scaling(tiny_models, family):
    model, tokenizer, device = load(tiny_models[family])
    encoded = encode_tasks(tokenizer, PROMPTS, TARGETS)
    with Float64Everywhere():
        result = attribute(model, tokenizer, encoded, device, batch_tokens=40, max_batch_size=2)
    n_layers = len(activation_modules(model))
    assert result.signed.shape == (n_layers, 48) and result.signed.dtype == torch.float64
    assert result.n_examples == 3
    assert result.n_tokens == sum(sum(e.counted) for e in encoded)
    assert torch.equal(result.scores, result.signed.abs())
    # the strongest neuron of each layer and two fixed ones
    pairs = [(layer, int(result.scores[layer].argmax())) for layer in range(n_layers)]
    pairs += [(0, 5), (n_layers - 1, 17)]
    top = float(result.scores.max())
    assert top > 0
    for layer, neuron in pairs:
        with Float64Everywhere():
            numeric = finite_difference(model, encoded, layer, neuron)
        assert result.signed[layer, neuron].item() == pytest.approx(
            numeric, rel=1e-5, abs=1e-7 * top
        ), (layer, neuron)


def test_finite_differences_see_a_wrong_loss(tiny_models):
    """The reference is sharp enough to catch a loss that is off by one token."""
    model, tokenizer, device = load(tiny_models["llama"])
    encoded = encode_tasks(tokenizer, PROMPTS, TARGETS)
    shifted = encode_tasks(tokenizer, PROMPTS, TARGETS)
    for e in shifted:  # count one token early: the last prompt token joins the loss
        first = e.counted.index(True)
        e.counted = tuple(c or i == first - 1 for i, c in enumerate(e.counted))
    with Float64Everywhere():
        wrong = attribute(model, tokenizer, shifted, device)
        right = attribute(model, tokenizer, encoded, device)
        layer, neuron = 1, int(right.scores[1].argmax())
        numeric = finite_difference(model, encoded, layer, neuron)
    assert right.signed[layer, neuron].item() == pytest.approx(numeric, rel=1e-5)
    assert wrong.signed[layer, neuron].item() != pytest.approx(numeric, rel=1e-3)


def test_batching_does_not_change_the_sums_and_the_model_is_left_as_it_was(tiny_models):
    model, tokenizer, device = load(tiny_models["llama"], dtype=torch.float32)
    model.model.layers[0].mlp.gate_proj.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    encoded = encode_tasks(tokenizer, PROMPTS * 3, TARGETS * 3)
    one_by_one = attribute(model, tokenizer, encoded, device, batch_tokens=1)
    together = attribute(model, tokenizer, encoded, device, batch_tokens=10_000)
    assert torch.allclose(one_by_one.signed, together.signed, rtol=1e-4, atol=1e-6)
    assert one_by_one.n_tokens == together.n_tokens
    # three copies of the examples: three times the sums of one copy
    once = attribute(model, tokenizer, encoded[:3], device)
    assert torch.allclose(together.signed, 3 * once.signed, rtol=1e-4, atol=1e-6)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_attribution_runs_under_inference_mode(tiny_models):
    model, tokenizer, device = load(tiny_models["gpt2"], dtype=torch.float32)
    encoded = encode_tasks(tokenizer, PROMPTS, TARGETS)
    with torch.inference_mode():
        inside = attribute(model, tokenizer, encoded, device)
    assert torch.allclose(inside.signed, attribute(model, tokenizer, encoded, device).signed)


def test_encode_tasks_counts_exactly_the_targets_tokens(tiny_models):
    _, tokenizer, _ = load(tiny_models["llama"])
    encoded = encode_tasks(tokenizer, PROMPTS, TARGETS)
    for e, prompt, target in zip(encoded, PROMPTS, TARGETS, strict=True):
        assert e.input_ids[0] == tokenizer.bos_token_id and not e.counted[0]
        counted = [i for i, c in zip(e.input_ids, e.counted, strict=True) if c]
        assert tokenizer.decode(counted) in (target, " " + target)
        first = e.counted.index(True)
        assert tokenizer.decode(e.input_ids[1:first]) + tokenizer.decode(counted) == (
            f"{prompt} {target}"
        )
        assert all(e.counted[first:])  # the target ends the text


def test_an_example_without_target_tokens_is_an_error(tiny_models):
    _, tokenizer, _ = load(tiny_models["llama"])
    with pytest.raises(PolyneuronError, match=r"task example 1: no token of its target ''"):
        encode_tasks(tokenizer, ["a\nAnswer:", "b\nAnswer:"], ["yes", ""])
    with pytest.raises(PolyneuronError, match=r"task example 0: .*max_length=4"):
        encode_tasks(tokenizer, [PROMPTS[1]], ["dog"], max_length=4)


def test_overlap_frame_counts_shared_neurons_of_every_ordered_pair():
    a = torch.tensor([[True, True, False], [True, False, False]])
    b = torch.tensor([[False, True, False], [True, False, True]])
    c = torch.zeros(2, 3, dtype=torch.bool)
    frame = overlap_frame({"a": a, "b": b, "c": c})
    assert frame.columns == ["task_a", "task_b", "n_a", "n_b", "n_overlap", "jaccard"]
    assert frame.schema["jaccard"] == pl.Float64
    rows = {(r["task_a"], r["task_b"]): r for r in frame.iter_rows(named=True)}
    assert len(rows) == 9
    # a = {0, 1, 3}, b = {1, 3, 5}: share {1, 3} of the union {0, 1, 3, 5}
    assert rows["a", "b"] == {"task_a": "a", "task_b": "b", "n_a": 3, "n_b": 3,
                              "n_overlap": 2, "jaccard": 0.5}  # fmt: skip
    assert rows["b", "a"]["jaccard"] == 0.5 and rows["a", "a"]["jaccard"] == 1.0
    assert rows["a", "c"]["n_overlap"] == 0 and rows["a", "c"]["jaccard"] == 0.0
    assert math.isnan(rows["c", "c"]["jaccard"])
    with pytest.raises(ValueError, match="differ in shape"):
        overlap_frame({"a": a, "d": torch.zeros(3, 2, dtype=torch.bool)})


def test_neuron_frame_and_attribution_files(tmp_path):
    signed = torch.tensor([[0.5, -2.0], [0.0, 1.0]], dtype=torch.float64)
    frame = neuron_frame(signed, top_share_mask(signed.abs(), 0.25), "topic")
    assert frame.schema == {
        "layer": pl.Int32, "neuron": pl.Int32, "group": pl.String, "score": pl.Float64,
        "signed": pl.Float64, "selected": pl.Boolean,
    }  # fmt: skip
    assert frame.rows() == [
        (0, 0, "topic", 0.5, 0.5, False),
        (0, 1, "topic", 2.0, -2.0, True),
        (1, 0, "topic", 0.0, 0.0, False),
        (1, 1, "topic", 1.0, 1.0, False),
    ]
    path = tmp_path / "a" / "topic.attribution.safetensors"
    write_attribution(path, Attribution(signed, 4, 9), {"task": "topic"})
    back, meta = read_attribution(path)
    assert torch.equal(back.signed, signed) and (back.n_examples, back.n_tokens) == (4, 9)
    assert meta == {"task": "topic", "n_examples": "4", "n_tokens": "9"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_scripts_attribute_each_task_then_select_and_overlap(tiny_models, tmp_path):
    probes = {}
    for task, targets in {"topic": ["sports", "food"], "qa": ["water", "dog"]}.items():
        probes[task] = tmp_path / f"{task}.parquet"
        pl.DataFrame(
            {
                "id": [f"{task}-{i}" for i in range(3)],
                "pair_id": [f"{task}-{i}" for i in range(3)],
                "lang": ["en"] * 3,
                "text": [PROMPTS[0], PROMPTS[1], PROMPTS[2]],
                "target": [*targets, "held out"],
                "label": [task] * 3,
                "split": ["train", "train", "test"],
            }
        ).write_parquet(probes[task])
    outputs = []
    for task in ("topic", "qa"):
        outputs.append(str(tmp_path / "act" / f"{task}.attribution.safetensors"))
        snakemake = SimpleNamespace(
            input=SimpleNamespace(model=str(tiny_models["gpt2"]), probes=str(probes[task])),
            output=[outputs[-1]],
            log=[str(tmp_path / f"attribute-{task}.log")],
            wildcards=SimpleNamespace(model="tiny", task=task),
            params=SimpleNamespace(
                model={"dtype": "float32", "device": "cpu"},
                split="train",
                batch_tokens=64,
                max_batch_size=4,
            ),
            threads=1,
        )
        script = REPO / "workflow" / "scripts" / "attribute_task.py"
        runpy.run_path(str(script), init_globals={"snakemake": snakemake})
        result, meta = read_attribution(outputs[-1])
        assert result.n_examples == 2 and result.signed.shape == (3, 48)
        assert meta["task"] == task and meta["split"] == "train" and meta["model"] == "tiny"
    snakemake = SimpleNamespace(
        input=outputs,
        output=SimpleNamespace(
            neurons=str(tmp_path / "tasks.parquet"), overlap=str(tmp_path / "task_overlap.parquet")
        ),
        log=[str(tmp_path / "score.log")],
        params=SimpleNamespace(tasks=["topic", "qa"], top_rate=0.1),
        threads=1,
    )
    runpy.run_path(str(REPO / "workflow" / "scripts" / "score_tasks.py"),
                   init_globals={"snakemake": snakemake})  # fmt: skip
    neurons = pl.read_parquet(tmp_path / "tasks.parquet")
    assert neurons.height == 2 * 3 * 48
    assert neurons.group_by("group").agg(pl.col("selected").sum()).sort("group").rows() == [
        ("qa", 14),
        ("topic", 14),
    ]
    overlap = pl.read_parquet(tmp_path / "task_overlap.parquet")
    assert overlap.height == 4
    assert overlap.filter(pl.col("task_a") == pl.col("task_b"))["jaccard"].to_list() == [1.0, 1.0]
