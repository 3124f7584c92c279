"""Refusal directions of one chat model over its languages: results/neurons/{model}/
refusal.parquet (every candidate per language, its scores, the selected one),
refusal.safetensors (``{lang}.directions`` [position, layer, hidden] and ``{lang}.selected``)
and refusal_cosine.parquet (cosine similarity between languages of the selected directions and,
per layer, of the last post-instruction position's directions)."""

import json

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.refusal_languages import candidates_table, direction_cosines
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
    cosine = direction_cosines(selected, last)
    off = cosine.filter(pl.col("direction") == "selected", pl.col("lang_a") != pl.col("lang_b"))
    if off.height:
        log.info("selected directions: cosine between languages %.3f to %.3f (mean %.3f)",
                 off["cosine"].min(), off["cosine"].max(), off["cosine"].mean())  # fmt: skip
    write_tensors(snakemake.output.tensors, tensors, {"selected": json.dumps(chosen)})
    write_parquet(candidates_table(tables), snakemake.output.table)
    write_parquet(cosine, snakemake.output.cosine)
