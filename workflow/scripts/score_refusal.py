"""Refusal directions of one chat model over its languages: results/neurons/{model}/
refusal.parquet (every candidate per language, its scores, the selected one),
refusal.safetensors (``{lang}.directions`` [position, layer, hidden] and ``{lang}.selected``)
and refusal_cosine.parquet (cosine similarity between languages of the selected directions and,
per layer, of the last post-instruction position's directions)."""

import json

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.refusal import cosine_matrix
from polyneuron.tensors import read_tensors, write_tensors

with script_log(snakemake.log[0]) as log:
    p, inp = snakemake.params, snakemake.input
    tables, tensors, selected, last, chosen = [], {}, {}, {}, {}
    for lang, tensor_path, table_path in zip(p.languages, inp.tensors, inp.tables, strict=True):
        found, meta = read_tensors(tensor_path)
        tensors[f"{lang}.directions"] = found["directions"]
        tensors[f"{lang}.selected"] = found["selected"]
        selected[lang] = found["selected"]
        last[lang] = found["directions"][-1]  # [layer, hidden] at the last position
        chosen[lang] = {"position": int(meta["position"]), "layer": int(meta["layer"])}
        tables.append(pl.read_parquet(table_path))
        log.info("%s: position %s, layer %s", lang, meta["position"], meta["layer"])
    table = pl.concat(tables).select(
        "layer",
        "position",
        pl.col("lang").alias("group"),
        pl.col("ablation_score").alias("score"),
        "selected",
        "steering_score",
        "kl",
        "norm",
        "reason",
    )
    rows = [("selected", None, a, b, c) for a, b, c in cosine_matrix(selected)]
    n_layers = next(iter(last.values())).shape[0]
    for layer in range(n_layers):
        by_lang = {lang: vectors[layer] for lang, vectors in last.items()}
        rows += [("last_position", layer, a, b, c) for a, b, c in cosine_matrix(by_lang)]
    cosine = pl.DataFrame(
        rows,
        schema={
            "direction": pl.String,
            "layer": pl.Int32,
            "lang_a": pl.String,
            "lang_b": pl.String,
            "cosine": pl.Float64,
        },
        orient="row",
    )
    off = cosine.filter(pl.col("direction") == "selected", pl.col("lang_a") != pl.col("lang_b"))
    if off.height:
        log.info("selected directions: cosine between languages %.3f to %.3f (mean %.3f)",
                 off["cosine"].min(), off["cosine"].max(), off["cosine"].mean())  # fmt: skip
    write_tensors(snakemake.output.tensors, tensors, {"selected": json.dumps(chosen)})
    write_parquet(table, snakemake.output.table)
    write_parquet(cosine, snakemake.output.cosine)
