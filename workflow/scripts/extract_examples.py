"""Per-example mean activations of one model on one language's probes:
results/activations/{model}/{probe}/{lang}.examples.safetensors ([example, layer, neuron],
float32, rows in the order of the probe file's rows of the extraction split)."""

from polyneuron.logs import script_log
from polyneuron.model.adapters import activation_modules, neurons_per_layer
from polyneuron.model.batches import encode
from polyneuron.model.extract import collect_example_means, read_split
from polyneuron.model.load import load_job_model
from polyneuron.tensors import safetensors_array

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    probes = read_split(snakemake.input.probes, p.split)
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    spans = None
    if p.count_tokens == "word":
        spans = list(zip(probes["word_start"], probes["word_end"], strict=True))
    encoded = encode(tokenizer, probes["text"].to_list(), spans)
    shape = (len(encoded), len(activation_modules(model)), neurons_per_layer(model.config))
    metadata = {"probe": wc.probe, "lang": wc.lang, "split": p.split, "model": wc.model}
    output = snakemake.output[0]
    with safetensors_array(output, "activations", shape, "float32", metadata) as out:
        collect_example_means(
            model,
            tokenizer,
            encoded,
            device,
            out,
            batch_tokens=p.batch_tokens,
            max_batch_size=p.max_batch_size,
            desc=f"{wc.model}/{wc.probe}/{wc.lang} examples",
        )
    log.info("%s: %d examples x %d layers x %d neurons", wc.lang, *shape)
