"""results/plots/{model}/cross_method.pdf: how the language (LAPE), value, task and relation
neuron sets of one model intersect, and where they lie."""

import json
from pathlib import Path

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.concepts import neuron_sets, plot_cross_method

with script_log(snakemake.log[0]) as log:
    inp = snakemake.input
    info = json.loads(Path(inp.info).read_text())
    columns = ["layer", "module", "neuron", "group", "lang", "selected", "acts"]
    frames = {}
    for method, path in (
        ("language", inp.lape),
        ("value", inp.values),
        ("task", inp.tasks),
        ("relation", inp.relations),
    ):
        table = pl.scan_parquet(path)
        frames[method] = table.select(
            [c for c in columns if c in table.collect_schema().names()]
        ).collect()
        if "module" in frames[method].columns:
            # relation neurons of the reference pool: a gate or up output i belongs to FFN unit
            # i, as act_fn(gate)'s does; a down output is a residual coordinate, no FFN unit
            down = frames[method].filter(pl.col("module") == "down")
            if "selected" in down.columns:
                down = down.filter("selected")
            log.info("%s: %d down_proj neurons left out (no FFN unit)", method, down.height)
            frames[method] = frames[method].filter(pl.col("module") != "down")
    sets = neuron_sets(frames)
    for (method,), rows in sets.group_by("method", maintain_order=True):
        log.info("%s: %d groups, %d neurons in the union", method,
                 rows["group"].n_unique(), rows.unique(["layer", "neuron"]).height)  # fmt: skip
    plot_cross_method(sets, info["n_layers"], snakemake.wildcards.model, snakemake.output[0])
