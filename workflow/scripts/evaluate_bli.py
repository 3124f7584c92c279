"""BLI with language neurons off: results/evaluation/{model}/bli.parquet, P@1 of X → pivot word
translation on MUSE pairs that are not probes, plain, with each language's LAPE neurons off,
with each bridge target's overlap neurons with its bridge language off, and with random sets
of the same per-layer sizes over several seeds (polyneuron.evaluate.matrix.ABLATION_SCHEMA)."""

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.evaluate.bli import BliItems, bli_matrix, bridge_sets, dictionary_tests
from polyneuron.evaluate.controls import load_controls
from polyneuron.evaluate.interventions import neuron_set_from_frame
from polyneuron.evaluate.perplexity import summarize_ablation
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.load import load_job_model
from polyneuron.neurons.stats import load_act_prob

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    controls = load_controls(snakemake.input.levels, p.level_languages, p.level_shards,
                             p.control, p.control_bins, p.mode)  # fmt: skip
    items = {}
    for lang, path in zip(p.languages, inp.dictionaries, strict=True):
        test, malformed = dictionary_tests(
            path, lang, p.pivot, p.names, p.max_words, p.max_pairs, p.drop_identical,
            p.on_malformed,
        )  # fmt: skip
        if malformed:
            log.warning("%s (skipped)", malformed.describe())
        if test.height < p.max_pairs:
            log.warning("%s: %d test pairs beyond the %d probe words of %s (max_pairs %d)",
                        lang, test.height, p.max_words, path, p.max_pairs)  # fmt: skip
        if not test.is_empty():
            items[lang] = BliItems.from_frame(test, p.answer_prefix)
    if not items:
        raise PolyneuronError(
            "evaluation.bli: no dictionary has pairs beyond the probes' probes.muse.max_words "
            f"({p.max_words}); lower it or give the languages larger dictionaries"
        )
    lape = pl.read_parquet(inp.neurons)
    sets = {lang: neuron_set_from_frame(lape.filter(pl.col("lang") == lang)) for lang in items}
    if p.bridge_targets:
        act_prob, langs = load_act_prob(inp.shards, p.bridge_languages, p.shards)
        bridges = bridge_sets(pl.read_parquet(inp.bridges), act_prob, langs, p.bridge_percentile)
        sets.update(bridges)
        sizes = [f"{name} ({sum(map(len, s.values()))} neurons)" for name, s in bridges.items()]
        log.info("bridge sets: %s", ", ".join(sizes) or "none selected")
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    frame = bli_matrix(
        model, tokenizer, sets, items, p.seeds, device, mode=p.mode, factor=p.factor,
        max_new_tokens=p.max_new_tokens, batch_size=p.batch_size, desc=f"{wc.model} BLI",
        controls=controls,
    )  # fmt: skip
    write_parquet(frame, snakemake.output[0])
    for row in summarize_ablation(frame).iter_rows(named=True):
        log.info("%s off (%s, %d seeds): mean ΔP@1 own language %s, others %s",
                 row["intervened"], row["control"], row["n_seeds"], row["diagonal"],
                 row["off_diagonal"])  # fmt: skip
