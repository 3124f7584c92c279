"""MUSE translation probes for one language: results/probes/muse/{lang}.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.muse import build_probes, is_reversed, pivot_pairs, read_dictionary

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    pairs, sources = {}, {}
    for lang, path in snakemake.input.items():
        frame, malformed = read_dictionary(path, p.on_malformed)
        if malformed:
            log.warning("%s (skipped)", malformed.describe())
        if malformed.capitalised:
            log.warning("%s", malformed.describe_case())
        pairs[lang] = pivot_pairs(frame, is_reversed(path, p.pivot, lang))
        sources[lang] = path.rsplit("/", 1)[-1]
    probes = build_probes(
        pairs, sources, p.pivot, p.languages, p.names, p.max_words, p.drop_identical
    )
    lang = snakemake.wildcards.lang
    log.info("%s: %d probes, e.g. %s", lang, probes[lang].height, probes[lang]["text"][0])
    write_parquet(probes[lang], snakemake.output[0])
