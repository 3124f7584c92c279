"""MUSE translation probes for one language: results/probes/muse/{lang}.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.muse import build_probes, language_pairs, pivot_language_pairs

with script_log(snakemake.log[0]) as log:
    p, lang = snakemake.params, snakemake.wildcards.lang
    paths = dict(snakemake.input.items())
    sources = {other: path.rsplit("/", 1)[-1] for other, path in paths.items()}
    settings = (p.pivot, p.max_words, p.drop_identical, p.on_malformed)
    if lang == p.pivot:  # its words are ranked over every dictionary
        pairs, reports = pivot_language_pairs(paths, *settings)
        languages = p.languages
    else:  # only its own dictionary, streamed
        frame, report = language_pairs(paths[lang], p.pivot, lang, *settings[1:])
        pairs, reports, languages = {lang: frame}, {lang: report}, [lang]
    for report in reports.values():
        if report:
            log.warning("%s (skipped)", report.describe())
        if report.capitalised:
            log.warning("%s", report.describe_case())
    probes = build_probes(pairs, sources, p.pivot, languages, p.names, p.max_words,
                          p.drop_identical)  # fmt: skip
    log.info("%s: %d probes, e.g. %s", lang, probes[lang].height, probes[lang]["text"][0])
    write_parquet(probes[lang], snakemake.output[0])
