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
    columns = ["layer", "neuron", "group", "lang", "selected", "acts"]
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
    sets = neuron_sets(frames)
    for (method,), rows in sets.group_by("method", maintain_order=True):
        log.info("%s: %d groups, %d neurons in the union", method,
                 rows["group"].n_unique(), rows.unique(["layer", "neuron"]).height)  # fmt: skip
    plot_cross_method(sets, info["n_layers"], snakemake.wildcards.model, snakemake.output[0])
