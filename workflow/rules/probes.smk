rule build_muse_probes:
    input:
        unpack(muse_dictionaries),
    output:
        "results/probes/muse/{lang}.parquet",
    log:
        "logs/build_muse_probes/{lang}.log",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        pivot=MUSE["pivot"],
        languages=probe_languages,
        names=lambda wc: {lang: NAMES[lang] for lang in probe_languages(wc)},
        max_words=MUSE["max_words"],
        drop_identical=MUSE["drop_identical"],
        on_malformed=MUSE["on_malformed"],
        code=code_version("muse"),
    script:
        "../scripts/build_muse_probes.py"
