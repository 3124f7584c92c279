# Stage probes -> results/probes/ and results/translations/: every probe set, read from its
# source files (and translated where a language has none).


rule build_muse_probes:
    input:
        unpack(muse_dictionaries),
    output:
        "results/probes/muse/{lang}.parquet",
    log:
        "logs/build_muse_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_muse_probes/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        pivot=MUSE["pivot"],
        languages=probe_languages,
        names=lambda wc: {lang: NAMES[lang] for lang in probe_languages(wc)},
        max_words=MUSE["max_words"],
        drop_identical=MUSE["drop_identical"],
        on_malformed=MUSE["on_malformed"],
        code=code_hash("build_muse_probes"),
    script:
        "../scripts/build_muse_probes.py"


rule build_flores_probes:
    input:
        unpack(flores_texts),
    output:
        "results/probes/flores/{lang}.parquet",
    log:
        "logs/build_flores_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_flores_probes/{lang}.tsv"
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
        every=1,
        code=code_hash("build_parallel_probes"),
    script:
        "../scripts/build_parallel_probes.py"


use rule build_flores_probes as build_text_probes with:
    input:
        unpack(text_corpus),
    output:
        "results/probes/text/{lang}.parquet",
    log:
        "logs/build_text_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_text_probes/{lang}.tsv"
    params:
        pattern=lambda wildcards: TEXT["pattern"],
        flores_codes={},
        aligned=False,
        reference=None,
        heldout_every=0,
        max_texts=TEXT["max_texts"],
        every=TEXT["every"],
        code=code_hash("build_parallel_probes"),


rule build_task_probes:
    input:
        task_data,
    output:
        "results/probes/tasks/{task}.parquet",
    log:
        "logs/build_task_probes/{task}.log",
    benchmark:
        "results/benchmarks/build_task_probes/{task}.tsv"
    wildcard_constraints:
        task=r"[a-z][a-z0-9_]*",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        test_every=TASKS["test_every"],
        code=code_hash("build_task_probes"),
    script:
        "../scripts/build_task_probes.py"


rule build_value_probes:
    input:
        value_probe_files,
    output:
        "results/probes/values/{lang}.parquet",
    log:
        "logs/build_value_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_value_probes/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=VALUE_PROBES["languages"],
        xlsx_lang=VALUE_PROBES["xlsx_lang"],
        aligned_option=VALUE_PROBES["aligned_option"],
        code=code_hash("build_value_probes"),
    script:
        "../scripts/build_value_probes.py"


rule build_relation_probes:
    input:
        relation_fact_files,
    output:
        "results/probes/relations/{lang}.parquet",
    log:
        "logs/build_relation_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_relation_probes/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=RELATION_PROBES["languages"],
        extra_relations=RELATION_PROBES["extra_relations"],
        test_fraction=RELATION_PROBES["test_fraction"],
        code=code_hash("build_relation_probes"),
    script:
        "../scripts/build_relation_probes.py"


rule build_refusal_source:
    input:
        unpack(refusal_sources),
    output:
        "results/translations/refusal/source.parquet",
    log:
        "logs/build_refusal_source.log",
    benchmark:
        "results/benchmarks/build_refusal_source.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        harmful=REFUSAL["harmful"],
        splits=REFUSAL["splits"],
        seed=REFUSAL["seed"],
        code=code_hash("build_refusal_source"),
    script:
        "../scripts/build_refusal_source.py"


rule translate_refusal:
    input:
        unpack(translation_inputs),
        source="results/translations/refusal/source.parquet",
    output:
        "results/translations/refusal/{translator}/{lang}.parquet",
    log:
        "logs/translate_refusal/{translator}/{lang}.log",
    benchmark:
        "results/benchmarks/translate_refusal/{translator}/{lang}.tsv"
    wildcard_constraints:
        translator="|".join(TRANSLATORS),
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        gpu=translation_gpus,
    params:
        source_lang=SOURCE_LANG,
        settings=translator_settings,
        mt_model=hf_model_for,
        model=translator_model_params,
        names=lambda wc: {lang: NAMES[lang] for lang in (SOURCE_LANG, wc.lang)},
        code=code_hash("translate_refusal"),
    script:
        "../scripts/translate_refusal.py"


rule build_refusal_probes:
    input:
        unpack(refusal_probe_inputs),
        source="results/translations/refusal/source.parquet",
    output:
        "results/probes/refusal/{lang}.parquet",
    log:
        "logs/build_refusal_probes/{lang}.log",
    benchmark:
        "results/benchmarks/build_refusal_probes/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        code=code_hash("build_refusal_probes"),
    script:
        "../scripts/build_refusal_probes.py"


rule probes:
    """Every probe set from its configured source: snakemake probes."""
    input:
        all_probe_sets(),
    localrule: True
