# Stage evaluate -> results/evaluation/{model}/{method}.parquet: every intervention's table.
# Each neuron set or direction is switched off (or added) beside random controls of the same
# per-layer sizes (ablation.seeds); XTransplant moves FFN outputs between languages.


rule evaluate_lape:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/lape.parquet",
        levels=LEVEL_SHARDS,
        texts=expand("results/probes/flores/{lang}.parquet", lang=ABLATION_LANGS),
    output:
        "results/evaluation/{model}/lape.parquet",
    log:
        "logs/evaluate_lape/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_lape/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_lape"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        languages=ABLATION_LANGS,
        split=ABLATION["split"],
        max_texts=ABLATION["max_texts"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("evaluate_perplexity"),
    script:
        "../scripts/evaluate_perplexity.py"


use rule evaluate_lape as evaluate_overlap with:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/overlap_sets.parquet",
        levels=LEVEL_SHARDS,
        texts=expand(
            "results/probes/flores/{lang}.parquet", lang=OVERLAP_ABLATION_LANGS
        ),
    output:
        "results/evaluation/{model}/overlap.parquet",
    log:
        "logs/evaluate_overlap/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_overlap/{model}.tsv"
    resources:
        **model_job(BUDGETS["evaluate_overlap"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        languages=OVERLAP_ABLATION_LANGS,
        split=ABLATION["split"],
        max_texts=ABLATION["max_texts"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("evaluate_perplexity"),


rule evaluate_bli:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/lape.parquet",
        levels=LEVEL_SHARDS,
        dictionaries=lambda wc: [
            muse_dictionaries(Namespace(lang=lang))[lang] for lang in BLI_LANGS
        ],
        bridges=(
            "results/neurons/{model}/bridges.parquet" if BRIDGES["targets"] else []
        ),
        shards=(
            expand(
                "results/activations/{{model}}/{probe}/{lang}/part-{k}.parquet",
                probe=BRIDGES["probe"],
                lang=BRIDGE_LANGS,
                k=range(SHARDS),
            )
            if BRIDGES["targets"]
            else []
        ),
    output:
        "results/evaluation/{model}/bli.parquet",
    log:
        "logs/evaluate_bli/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_bli/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_bli"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        languages=BLI_LANGS,
        pivot=MUSE["pivot"],
        names={lang: NAMES[lang] for lang in [MUSE["pivot"], *BLI_LANGS]},
        max_words=MUSE["max_words"],
        drop_identical=MUSE["drop_identical"],
        on_malformed=MUSE["on_malformed"],
        max_pairs=BLI["max_pairs"],
        max_new_tokens=BLI["max_new_tokens"],
        answer_prefix=BLI["answer_prefix"],
        batch_size=BLI["batch_size"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        bridge_targets=BRIDGES["targets"],
        bridge_languages=BRIDGE_LANGS,
        bridge_percentile=BRIDGES["percentile"],
        shards=SHARDS,
        code=code_hash("evaluate_bli"),
    script:
        "../scripts/evaluate_bli.py"


rule evaluate_values:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/values.parquet",
        levels=LEVEL_SHARDS,
        probes=expand("results/probes/values/{lang}.parquet", lang=VALUE_EVAL_LANGS),
    output:
        "results/evaluation/{model}/values.parquet",
    log:
        "logs/evaluate_values/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_values/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_values"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        languages=VALUE_EVAL_LANGS,
        max_questions=EVALUATION["values"]["max_questions"],
        mode=EVALUATION["values"]["mode"],
        factor=EVALUATION["values"]["factor"],
        seeds=ABLATION["seeds"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("evaluate_values"),
    script:
        "../scripts/evaluate_values.py"


rule evaluate_tasks:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/tasks.parquet",
        levels=LEVEL_SHARDS,
        probes=expand("results/probes/tasks/{task}.parquet", task=TASKS["names"]),
    output:
        "results/evaluation/{model}/tasks.parquet",
    log:
        "logs/evaluate_tasks/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_tasks/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_tasks"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        tasks=TASKS["names"],
        max_examples=EVALUATION["tasks"]["max_examples"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        seeds=ABLATION["seeds"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("evaluate_tasks"),
    script:
        "../scripts/evaluate_tasks.py"


rule evaluate_relations:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/relations.parquet",
        levels=LEVEL_SHARDS,
        probes=expand(
            "results/probes/relations/{lang}.parquet",
            lang=EVALUATION["relations"]["languages"],
        ),
    output:
        "results/evaluation/{model}/relations.parquet",
    log:
        "logs/evaluate_relations/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_relations/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_relations"]),
    params:
        **CONTROL_PARAMS,
        model=model_params,
        languages=EVALUATION["relations"]["languages"],
        fractions=EVALUATION["relations"]["fractions"],
        max_examples=EVALUATION["relations"]["max_examples"],
        answer_prefix=LENS["relations_prefix"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        seeds=ABLATION["seeds"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("evaluate_relations"),
    script:
        "../scripts/evaluate_relations.py"


rule evaluate_xtransplant:
    input:
        model="resources/models/{model}",
        probes=expand("results/probes/relations/{lang}.parquet", lang=XTRANSPLANT_LANGS),
        english="results/probes/relations/en.parquet",
    output:
        "results/evaluation/{model}/xtransplant.parquet",
    log:
        "logs/evaluate_xtransplant/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_xtransplant/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_xtransplant"]),
    params:
        model=model_params,
        languages=XTRANSPLANT_LANGS,
        split="test",
        layers=XTRANSPLANT["layers"],
        max_examples=XTRANSPLANT["max_examples"],
        answer_prefix=LENS["relations_prefix"],
        seeds=ABLATION["seeds"],
        code=code_hash("evaluate_xtransplant"),
    script:
        "../scripts/evaluate_xtransplant.py"


rule evaluate_refusal:
    input:
        model="resources/models/{model}",
        directions="results/neurons/{model}/refusal.safetensors",
        probes=expand("results/probes/refusal/{lang}.parquet", lang=REFUSAL_LANGS),
        phrases=lambda wc: [
            refusal_probe_inputs(Namespace(lang=lang))["phrases"]
            for lang in REFUSAL_LANGS
        ],
    output:
        "results/evaluation/{model}/refusal.parquet",
    log:
        "logs/evaluate_refusal/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_refusal/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["evaluate_refusal"]),
    params:
        model=model_params,
        chat=chat_params,
        languages=REFUSAL_LANGS,
        seeds=ABLATION["seeds"],
        addition_coeff=REFUSAL_DIRECTIONS["addition_coeff"],
        max_prompts=EVALUATION["refusal"]["max_prompts"],
        max_new_tokens=EVALUATION["refusal"]["max_new_tokens"],
        batch_size=EVALUATION["refusal"]["batch_size"],
        code=code_hash("evaluate_refusal"),
    script:
        "../scripts/evaluate_refusal.py"
