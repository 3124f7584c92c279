"""PolyRefuse probes of one language: results/probes/refusal/{lang}.parquet."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.refusal import read_phrases, refusal_probes

with script_log(snakemake.log[0]) as log:
    lang = snakemake.wildcards.lang
    phrases = read_phrases(snakemake.input.phrases)  # judging refusals needs them: check now
    source = pl.read_parquet(snakemake.input.source)
    translated = getattr(snakemake.input, "translation", None)  # none for English
    translation = pl.read_parquet(translated) if translated else None
    probes = refusal_probes(source, lang, translation)
    counts = probes.group_by("label", "split", maintain_order=True).len()
    for label, split, n in counts.iter_rows():
        log.info("%s %s %s: %d", lang, label, split, n)
    log.info("%s: %d refusal phrases", lang, len(phrases))
    write_parquet(probes, snakemake.output[0])
