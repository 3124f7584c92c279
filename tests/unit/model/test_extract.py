import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.model.batches import encode, plan_batches, shard_rows
from polyneuron.model.extract import collect_stats
from polyneuron.model.load import ModelSpec, load_prepared


def test_plan_batches_groups_by_length_within_token_budget():
    # sorted by length: 1 (len 1), 2 (3), 3 (3), 0 (5), 4 (10); budget 9 padded tokens
    assert plan_batches([5, 1, 3, 3, 10], batch_tokens=9, max_batch_size=10) == [
        [1, 2, 3],
        [0],
        [4],
    ]
    assert plan_batches([2, 2, 2, 2], batch_tokens=100, max_batch_size=3) == [[0, 1, 2], [3]]


def test_shard_rows_are_contiguous_and_cover_everything_once():
    assert [shard_rows(10, 3, k) for k in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
    assert [len(shard_rows(2, 3, k)) for k in range(3)] == [1, 1, 0]
    with pytest.raises(PolyneuronError):
        shard_rows(10, 3, 3)


def load(folder):
    return load_prepared(ModelSpec("tiny", str(folder), device="cpu"), folder)


def test_encode_counts_only_the_words_tokens_when_given_spans(tiny_models):
    _, tokenizer, _ = load(tiny_models["llama"])
    text = 'German: "Wasser" → English:'
    start = text.index("Wasser")
    whole, word = encode(tokenizer, [text, text], [(0, len(text)), (start, start + 6)])
    ids = whole.input_ids
    assert not whole.counted[0]  # BOS is special: never counted
    assert all(whole.counted[1:])
    counted = [i for i, c in zip(ids, word.counted, strict=True) if c]
    assert tokenizer.decode(counted).strip() == "Wasser"


def test_padding_never_counts(tiny_models):
    model, tokenizer, device = load(tiny_models["llama"])
    texts = ['German: "Hund" → English:', "a", 'French: "eau" → English: "water"']
    encoded = encode(tokenizer, texts)
    batched = collect_stats(model, tokenizer, encoded, device, batch_tokens=10_000)
    alone = [collect_stats(model, tokenizer, [e], device) for e in encoded]
    assert int(batched.n_tokens[0]) == sum(sum(e.counted) for e in encoded)
    assert torch.equal(batched.n_active, sum(s.n_active for s in alone))
    assert torch.allclose(batched.act_sum, sum(s.act_sum for s in alone), atol=1e-4)
    assert torch.allclose(batched.act_sqsum, sum(s.act_sqsum for s in alone), atol=1e-4)


def test_encode_in_chunks_matches_one_pass(tiny_models, monkeypatch):
    import polyneuron.model.batches as batches

    _, tokenizer, _ = load(tiny_models["llama"])
    texts = [f'English: "dog {i}" → German:' for i in range(5)]
    spans = [(10, 15)] * 5
    whole = encode(tokenizer, texts, spans)
    monkeypatch.setattr(batches, "ENCODE_CHUNK", 2)
    chunked = encode(tokenizer, texts, spans)
    assert [(list(e.input_ids), e.counted) for e in chunked] == [
        (list(e.input_ids), e.counted) for e in whole
    ]
    assert any(whole[0].counted) and not all(whole[0].counted)


def test_example_means_match_each_texts_own_forward(tiny_models):
    import numpy as np

    from polyneuron.model.adapters import activation_modules, neurons_per_layer
    from polyneuron.model.extract import collect_example_means

    model, tokenizer, device = load(tiny_models["llama"])
    texts = ['English: "dog" → German:', "the lazy dog", 'French: "eau" → English: water']
    encoded = encode(tokenizer, texts)
    layers, neurons = len(activation_modules(model)), neurons_per_layer(model.config)
    out = np.zeros((len(texts), layers, neurons), dtype=np.float32)
    collect_example_means(model, tokenizer, encoded, device, out, batch_tokens=10_000)
    for row, e in enumerate(encoded):
        stats = collect_stats(model, tokenizer, [e], device)  # one text: sum / count = mean
        expected = (stats.act_sum / stats.n_tokens[:, None]).numpy()
        assert np.allclose(out[row], expected, atol=1e-5), row
    with pytest.raises(ValueError, match="expected"):
        collect_example_means(model, tokenizer, encoded, device, out[:2])


@pytest.mark.parametrize("per_example", [False, True], ids=["statistics", "example means"])
def test_a_nan_weight_stops_extraction_naming_layer_dtype_and_batch(tiny_models, per_example):
    import numpy as np

    from polyneuron.model.adapters import activation_modules, decoder_layers, neurons_per_layer
    from polyneuron.model.extract import collect_example_means

    model, tokenizer, device = load(tiny_models["llama"])
    bad_layer = 1
    with torch.no_grad():
        decoder_layers(model)[bad_layer].mlp.gate_proj.weight[0, 0] = float("nan")
    encoded = encode(tokenizer, ["the lazy dog", "a cat", "water"])
    message = (
        rf"tiny: non-finite activations \(NaN or inf\) in layer {bad_layer}, first in batch 1 "
        r"of 3 \(texts \d\), with the model in float32"
    )
    with pytest.raises(PolyneuronError, match=message):
        if per_example:
            shape = (3, len(activation_modules(model)), neurons_per_layer(model.config))
            out = np.zeros(shape, dtype=np.float16)
            collect_example_means(model, tokenizer, encoded, device, out, max_batch_size=1,
                                  desc="tiny")  # fmt: skip
        else:
            collect_stats(model, tokenizer, encoded, device, max_batch_size=1, desc="tiny")


def test_means_beyond_float16_s_range_are_stored_finite_in_float32_and_stop_float16(tiny_models):
    import numpy as np

    from polyneuron.model.adapters import activation_modules, decoder_layers, neurons_per_layer
    from polyneuron.model.extract import collect_example_means

    model, tokenizer, device = load(tiny_models["llama"])
    with torch.no_grad():
        decoder_layers(model)[0].mlp.gate_proj.weight.mul_(1e7)  # finite in float32, not float16
    encoded = encode(tokenizer, ["the lazy dog"])
    assert torch.isfinite(collect_stats(model, tokenizer, encoded, device).act_sum).all()
    shape = (1, len(activation_modules(model)), neurons_per_layer(model.config))
    out = np.zeros(shape, "float32")  # what extract_examples writes
    collect_example_means(model, tokenizer, encoded, device, out)
    assert np.isfinite(out).all() and np.abs(out[0, 0]).max() > 7e4
    with pytest.raises(PolyneuronError, match="in layer 0"):
        collect_example_means(model, tokenizer, encoded, device, np.zeros(shape, "float16"))
