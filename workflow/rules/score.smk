# Stage score -> results/neurons/ and results/directions/: every neuron and direction
# method (LAPE, overlap, bridges, relation, value and task neurons, refusal directions) and the
# logit lens.


rule score_lape:
    input:
        lambda wc: activation_shards(wc.model, config["lape"]["probe"]),
    output:
        "results/neurons/{model}/lape.parquet",
    log:
        "logs/score_lape/{model}.log",
    benchmark:
        "results/benchmarks/score_lape/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        shards=SHARDS,
        filter_rate=config["lape"]["filter_rate"],
        top_rate=config["lape"]["top_rate"],
        activation_bar_ratio=config["lape"]["activation_bar_ratio"],
        code=code_hash("score_lape"),
    script:
        "../scripts/score_lape.py"


rule score_overlap:
    input:
        lambda wc: activation_shards(wc.model, config["overlap"]["probe"]),
    output:
        table="results/neurons/{model}/overlap.parquet",
        sets="results/neurons/{model}/overlap_sets.parquet",
    log:
        "logs/score_overlap/{model}.log",
    benchmark:
        "results/benchmarks/score_overlap/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        shards=SHARDS,
        percentile=config["overlap"]["percentile"],
        ties=config["overlap"]["ties"],
        code=code_hash("score_overlap"),
    script:
        "../scripts/score_overlap.py"


rule score_bridges:
    input:
        shards=lambda wc: expand(
            "results/activations/{model}/{probe}/{lang}/part-{k}.parquet",
            model=wc.model,
            probe=BRIDGES["probe"],
            lang=BRIDGE_LANGS,
            k=range(SHARDS),
        ),
        probes=expand(
            "results/probes/{probe}/{lang}.parquet",
            probe=BRIDGES["probe"],
            lang=BRIDGE_LANGS,
        ),
        examples=lambda wc: expand(
            "results/activations/{model}/{probe}/{lang}.examples.safetensors",
            model=wc.model,
            probe=BRIDGES["probe"],
            lang=BRIDGE_LANGS,
        ),
    output:
        "results/neurons/{model}/bridges.parquet",
    log:
        "logs/score_bridges/{model}.log",
    benchmark:
        "results/benchmarks/score_bridges/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        languages=BRIDGE_LANGS,
        shards=SHARDS,
        split=config["extraction"]["split"],
        pairs=BRIDGE_PAIRS,
        percentile=BRIDGES["percentile"],
        max_pairs=BRIDGES["max_pairs"],
        seed=BRIDGES["seed"],
        window=BRIDGES["window"],
        sigma=BRIDGES["sigma"],
        normalised=BRIDGES["normalised"],
        code=code_hash("score_bridges"),
    script:
        "../scripts/score_bridges.py"


rule score_relations:
    input:
        probes=expand(
            "results/probes/relations/{lang}.parquet",
            lang=RELATION_PROBES["languages"],
        ),
        examples=lambda wc: expand(
            "results/activations/{model}/relations/{lang}.{kind}.safetensors",
            model=wc.model,
            lang=RELATION_PROBES["languages"],
            kind="pool" if RELATION_NEURONS["pool"] == "reference" else "examples",
        ),
        answers=lambda wc: (
            expand(
                "results/activations/{model}/relations/{lang}.answers.parquet",
                model=wc.model,
                lang=RELATION_PROBES["languages"],
            )
            if RELATION_NEURONS["positives"] == "correct"
            else []
        ),
    output:
        neurons="results/neurons/{model}/relations.parquet",
        overlap="results/neurons/{model}/relation_overlap.parquet",
    log:
        "logs/score_relations/{model}.log",
    benchmark:
        "results/benchmarks/score_relations/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        languages=RELATION_PROBES["languages"],
        split=config["extraction"]["split"],
        pool=RELATION_NEURONS["pool"],
        positives=RELATION_NEURONS["positives"],
        negative_ratio=RELATION_NEURONS["negative_ratio"],
        top_n=RELATION_NEURONS["top_n"],
        reference_neurons=RELATION_NEURONS["reference_neurons"],
        seed=RELATION_NEURONS["seed"],
        code=code_hash("score_relations"),
    script:
        "../scripts/score_relations.py"


rule score_values:
    input:
        lambda wc: expand(
            "results/activations/{model}/values/{lang}.groups.parquet",
            model=wc.model,
            lang=VALUE_PROBES["languages"],
        ),
    output:
        "results/neurons/{model}/values.parquet",
    log:
        "logs/score_values/{model}.log",
    benchmark:
        "results/benchmarks/score_values/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        languages=VALUE_PROBES["languages"],
        masks=config["value_neurons"]["masks"],
        layers=config["value_neurons"]["layers"],
        top_rate=config["value_neurons"]["top_rate"],
        code=code_hash("score_values"),
    script:
        "../scripts/score_values.py"


rule score_tasks:
    input:
        lambda wc: expand(
            "results/activations/{model}/tasks/{task}.attribution.safetensors",
            model=wc.model,
            task=TASKS["names"],
        ),
    output:
        neurons="results/neurons/{model}/tasks.parquet",
        overlap="results/neurons/{model}/task_overlap.parquet",
    log:
        "logs/score_tasks/{model}.log",
    benchmark:
        "results/benchmarks/score_tasks/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        tasks=TASKS["names"],
        top_rate=config["task_neurons"]["top_rate"],
        code=code_hash("score_tasks"),
    script:
        "../scripts/score_tasks.py"


rule score_logit_lens:
    input:
        model="resources/models/{model}",
        muse_en=f"results/probes/muse/{MUSE['pivot']}.parquet",
        relations=expand("results/probes/relations/{lang}.parquet", lang=LENS_RELATIONS),
    output:
        layers="results/neurons/{model}/logit_lens.parquet",
        switch="results/neurons/{model}/logit_lens_switch.parquet",
    log:
        "logs/score_logit_lens/{model}.log",
    benchmark:
        "results/benchmarks/score_logit_lens/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(probe="muse"),
    params:
        model=model_params,
        muse_languages=LENS_MUSE,
        relation_languages=LENS_RELATIONS,
        split=config["extraction"]["split"],
        max_examples=LENS["max_examples"],
        answer_prefix={
            "muse": LENS["muse_prefix"],
            "relations": LENS["relations_prefix"],
        },
        batch_size=LENS["batch_size"],
        code=code_hash("score_logit_lens"),
    script:
        "../scripts/score_logit_lens.py"


rule find_refusal_direction:
    input:
        model="resources/models/{model}",
        probes="results/probes/refusal/{lang}.parquet",
        phrases=lambda wc: refusal_probe_inputs(wc)["phrases"],
    output:
        tensors="results/directions/{model}/refusal/{lang}.safetensors",
        table="results/directions/{model}/refusal/{lang}.parquet",
    log:
        "logs/find_refusal_direction/{model}/{lang}.log",
    benchmark:
        "results/benchmarks/find_refusal_direction/{model}/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(BUDGETS["find_refusal_direction"]),
    params:
        model=model_params,
        chat=chat_params,
        max_train=REFUSAL_DIRECTIONS["max_train"],
        max_val=REFUSAL_DIRECTIONS["max_val"],
        positions=REFUSAL_DIRECTIONS["positions"],
        filter=REFUSAL_DIRECTIONS["filter"],
        min_prompts=REFUSAL_DIRECTIONS["min_prompts"],
        kl_threshold=REFUSAL_DIRECTIONS["kl_threshold"],
        prune_layer_rate=REFUSAL_DIRECTIONS["prune_layer_rate"],
        induce_refusal_threshold=REFUSAL_DIRECTIONS["induce_refusal_threshold"],
        addition_coeff=REFUSAL_DIRECTIONS["addition_coeff"],
        batch_size=REFUSAL_DIRECTIONS["batch_size"],
        code=code_hash("find_refusal_direction"),
    script:
        "../scripts/find_refusal_direction.py"


rule score_refusal:
    input:
        tensors=lambda wc: expand(
            "results/directions/{model}/refusal/{lang}.safetensors",
            model=wc.model,
            lang=REFUSAL_LANGS,
        ),
        tables=lambda wc: expand(
            "results/directions/{model}/refusal/{lang}.parquet",
            model=wc.model,
            lang=REFUSAL_LANGS,
        ),
    output:
        table="results/neurons/{model}/refusal.parquet",
        tensors="results/neurons/{model}/refusal.safetensors",
        cosine="results/neurons/{model}/refusal_cosine.parquet",
    log:
        "logs/score_refusal/{model}.log",
    benchmark:
        "results/benchmarks/score_refusal/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        languages=REFUSAL_LANGS,
        code=code_hash("score_refusal"),
    script:
        "../scripts/score_refusal.py"
