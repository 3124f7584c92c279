"""Value probes (C-voice style) for one language: results/probes/values/{lang}.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.records import unpaired
from polyneuron.probes.values import build_value_probes, combine_records, read_value_file

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    lang = snakemake.wildcards.lang
    records = combine_records(
        [
            read_value_file(path, p.languages, p.xlsx_lang, p.aligned_option)
            for path in snakemake.input
        ]
    )
    lonely = unpaired(records, p.languages)
    if lonely:
        log.warning(
            "%d item(s) lack a translation in some of %s, e.g. %s",
            len(lonely),
            ", ".join(p.languages),
            lonely[0],
        )
    probes = build_value_probes(records, [lang])[lang]
    counts = probes.group_by("label", "condition", maintain_order=True).len()
    for label, condition, n in counts.iter_rows():
        log.info("%s %s/%s: %d", lang, label, condition, n)
    write_parquet(probes, snakemake.output[0])
