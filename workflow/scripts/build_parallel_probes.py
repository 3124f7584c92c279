"""Parallel (or monolingual) text probes for one language: results/probes/flores/{lang}.parquet
(and results/probes/text/{lang}.parquet), read line by line and written in row groups, so that
memory does not grow with the corpus."""

from collections import Counter

from polyneuron.io import write_parquet_groups
from polyneuron.logs import script_log
from polyneuron.probes.parallel import PROBE_SCHEMA, probe_groups

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    lang = snakemake.wildcards.lang
    counts = Counter()

    def counted(frames):
        for frame in frames:
            counts.update(frame["split"].to_list())
            yield frame

    groups = probe_groups(
        lang,
        snakemake.input.text,
        reference=snakemake.input.get("reference"),
        aligned=p.aligned,
        heldout_every=p.heldout_every,
        max_texts=p.max_texts,
        every=p.every,
    )
    n = write_parquet_groups(counted(groups), snakemake.output[0], PROBE_SCHEMA)
    log.info("%s: %d texts from %s %s", lang, n, snakemake.input.text, dict(sorted(counts.items())))
