"""Parallel (or monolingual) text probes for one language: results/probes/flores/{lang}.parquet
(and results/probes/text/{lang}.parquet)."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.parallel import parallel_probes

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    lang = snakemake.wildcards.lang
    probes = parallel_probes(
        lang,
        snakemake.input.text,
        reference=snakemake.input.get("reference"),
        aligned=p.aligned,
        heldout_every=p.heldout_every,
        max_texts=p.max_texts,
        every=p.every,
    )
    counts = dict(probes.group_by("split").len().sort("split").iter_rows())
    log.info("%s: %d texts from %s %s", lang, probes.height, snakemake.input.text, counts)
    write_parquet(probes, snakemake.output[0])
