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


rule build_flores_probes:
    input:
        unpack(flores_texts),
    output:
        "results/probes/flores/{lang}.parquet",
    log:
        "logs/build_flores_probes/{lang}.log",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        # a callable: Snakemake would fill a plain string's {lang} with the wildcard
        pattern=lambda wildcards: FLORES["pattern"],
        flores_codes=FLORES["flores_codes"],
        aligned=FLORES["aligned"],
        reference=LANGS[0] if FLORES["aligned"] else None,
        heldout_every=FLORES["heldout_every"],
        max_texts=FLORES["max_texts"],
        code=code_version("parallel"),
    script:
        "../scripts/build_parallel_probes.py"


rule build_task_probes:
    input:
        task_data,
    output:
        "results/probes/tasks/{task}.parquet",
    log:
        "logs/build_task_probes/{task}.log",
    wildcard_constraints:
        task=r"[a-z][a-z0-9_]*",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        test_every=TASKS["test_every"],
        code=code_version("tasks"),
    script:
        "../scripts/build_task_probes.py"
