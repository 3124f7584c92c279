"""Relation cloze probes for one language: results/probes/relations/{lang}.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.records import unpaired
from polyneuron.probes.relations import (
    RELATIONS,
    build_relation_probes,
    combine_facts,
    read_facts,
)

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    lang = snakemake.wildcards.lang
    known = [*RELATIONS, *p.extra_relations]
    facts = combine_facts([read_facts(path, known) for path in snakemake.input])
    lonely = unpaired(facts, p.languages)
    if lonely:
        log.warning(
            "%d fact(s) lack a translation in some of %s, e.g. %s",
            len(lonely),
            ", ".join(p.languages),
            lonely[0],
        )
    probes = build_relation_probes(facts, [lang], p.test_fraction)[lang]
    counts = probes.group_by("label", "split", maintain_order=True).len()
    for label, split, n in counts.iter_rows():
        log.info("%s %s/%s: %d", lang, label, split, n)
    log.info("e.g. %r -> %r", probes["text"][0], probes["target"][0])
    write_parquet(probes, snakemake.output[0])
