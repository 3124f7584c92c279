"""The English PolyRefuse pool with splits: results/translations/refusal/source.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.refusal import build_source, read_advbench, read_harmbench, read_harmless

READERS = {"advbench": read_advbench, "harmbench": read_harmbench}

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    frames = [READERS[name](snakemake.input[name]) for name in p.harmful]
    frames.append(read_harmless(snakemake.input.harmless))
    source = build_source(frames, p.splits, p.seed)
    counts = source.group_by("kind", "split", maintain_order=True).len()
    for kind, split, n in counts.iter_rows():
        log.info("%s %s: %d prompts", kind, split, n)
    sizes = dict(source.group_by("kind").len().iter_rows())
    if sizes.get("harmful") != sizes.get("harmless"):
        log.warning(
            "%d harmful but %d harmless prompts", sizes.get("harmful"), sizes.get("harmless")
        )
    write_parquet(source, snakemake.output[0])
