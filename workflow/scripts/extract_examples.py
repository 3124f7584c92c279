"""Per-example mean activations of one model on one language's probes:
results/activations/{model}/{probe}/{lang}.examples.safetensors ([example, layer, neuron],
float32, rows in the order of the probe file's rows of the extraction split); with pool
"reference", {lang}.pool.safetensors: the outputs of the MLP projections (gate, up, down) side by
side in each layer's row, named with their widths in the metadata."""

from polyneuron.logs import script_log
from polyneuron.model import work
from polyneuron.model.adapters import ACT, decoder_layers, module_widths, reference_pool
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
    modules = reference_pool(model) if p.pool == "reference" else (ACT,)
    widths = module_widths(model, modules)
    shape = (len(encoded), len(decoder_layers(model)), sum(widths.values()))
    metadata = {"probe": wc.probe, "lang": wc.lang, "split": p.split, "model": wc.model,
                "modules": ",".join(modules),
                "widths": ",".join(map(str, widths.values()))}  # fmt: skip
    output = snakemake.output[0]
    with (
        safetensors_array(output, "activations", shape, "float32", metadata) as out,
        work.need(1, logits="none"),
    ):
        collect_example_means(
            model,
            tokenizer,
            encoded,
            device,
            out,
            batch_tokens=p.batch_tokens,
            max_batch_size=p.max_batch_size,
            desc=f"{wc.model}/{wc.probe}/{wc.lang} examples",
            modules=modules,
        )
    log.info("%s: %d examples x %d layers x %d neurons (%s)", wc.lang, *shape,
             ", ".join(f"{m} {w}" for m, w in widths.items()))  # fmt: skip
