def probe_languages(wildcards):
    """Languages whose dictionaries shape this language's probes (all, for the pivot)."""
    if wildcards.lang == MUSE["pivot"]:
        return LANGS
    return [MUSE["pivot"], wildcards.lang]


def muse_dictionaries(wildcards):
    """The dictionary of each non-pivot language in :func:`probe_languages`, by language."""
    folder = resolve_path(MUSE["dir"], workflow.basedir)
    try:
        return {
            lang: str(find_dictionary(folder, MUSE["pivot"], lang)[0])
            for lang in probe_languages(wildcards)
            if lang != MUSE["pivot"]
        }
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


rule build_muse_probes:
    input:
        unpack(muse_dictionaries),
    output:
        "results/probes/muse/{lang}.parquet",
    params:
        pivot=MUSE["pivot"],
        languages=probe_languages,
        names=lambda wc: {lang: NAMES[lang] for lang in probe_languages(wc)},
        max_words=MUSE["max_words"],
        drop_identical=MUSE["drop_identical"],
        on_malformed=MUSE["on_malformed"],
        code=code_version("muse"),
    log:
        "logs/build_muse_probes/{lang}.log",
    script:
        "../scripts/build_muse_probes.py"
