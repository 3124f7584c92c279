"""Language neurons switched off: results/evaluation/{model}/{lape,overlap}.parquet, the perplexity
of every language's FLORES texts with each language's neuron set (LAPE, or its overlap set) off,
and with random sets of the same per-layer sizes over several seeds
(polyneuron.evaluate.matrix.ABLATION_SCHEMA)."""

import polars as pl

from polyneuron.evaluate.controls import load_controls
from polyneuron.evaluate.interventions import neuron_set_from_frame
from polyneuron.evaluate.perplexity import ablation_matrix, summarize_ablation
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    controls = load_controls(snakemake.input.levels, p.level_languages, p.level_shards,
                             p.control, p.control_bins, p.mode)  # fmt: skip
    table = pl.read_parquet(snakemake.input.neurons)
    sets = {
        lang: neuron_set_from_frame(table.filter(pl.col("lang") == lang)) for lang in p.languages
    }
    for lang, neurons in sets.items():
        if not neurons:
            log.info("%s: no neurons in its set; skipped as the intervened language", lang)
    texts = {
        lang: read_split(path, p.split)["text"].to_list()[: p.max_texts]
        for lang, path in zip(p.languages, snakemake.input.texts, strict=True)
    }
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    frame = ablation_matrix(
        model, tokenizer, {lang: s for lang, s in sets.items() if s}, texts, p.seeds, device,
        mode=p.mode, factor=p.factor, batch_tokens=p.batch_tokens,
        max_batch_size=p.max_batch_size, desc=f"{wc.model} ablation", controls=controls,
    )  # fmt: skip
    write_parquet(frame, snakemake.output[0])
    for row in summarize_ablation(frame).iter_rows(named=True):
        log.info(
            "%s off (%s, %d neurons, %d seeds): mean ΔNLL/token own language %.4g, others %.4g",
            row["intervened"], row["control"], row["n_neurons"], row["n_seeds"],
            row["diagonal"] if row["diagonal"] is not None else float("nan"),
            row["off_diagonal"] if row["off_diagonal"] is not None else float("nan"),
        )  # fmt: skip
