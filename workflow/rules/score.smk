rule score_lape:
    input:
        lambda wc: activation_shards(wc.model, config["lape"]["probe"]),
    output:
        "results/neurons/{model}/lape.parquet",
    log:
        "logs/score_lape/{model}.log",
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
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        shards=SHARDS,
        percentile=config["overlap"]["percentile"],
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
            "results/activations/{model}/relations/{lang}.examples.safetensors",
            model=wc.model,
            lang=RELATION_PROBES["languages"],
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
        negative_ratio=config["relation_neurons"]["negative_ratio"],
        top_n=config["relation_neurons"]["top_n"],
        reference_neurons=config["relation_neurons"]["reference_neurons"],
        seed=config["relation_neurons"]["seed"],
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
        filter_rate=config["value_neurons"]["filter_rate"],
        top_rate=config["value_neurons"]["top_rate"],
        code=code_hash("score_values"),
    script:
        "../scripts/score_values.py"


rule attribute_task:
    input:
        model="resources/models/{model}",
        probes="results/probes/tasks/{task}.parquet",
    output:
        "results/activations/{model}/tasks/{task}.attribution.safetensors",
    log:
        "logs/attribute_task/{model}/{task}.log",
    benchmark:
        "results/benchmarks/attribute_task/{model}/{task}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", probe="tasks", backward=True),
        runtime=extract_resource("runtime", probe="tasks", backward=True),
        gpu=extract_resource("gpu", probe="tasks"),
    params:
        model=model_params,
        split=config["extraction"]["split"],
        batch_tokens=config["task_neurons"]["batch_tokens"],
        max_batch_size=config["task_neurons"]["max_batch_size"],
        code=code_hash("attribute_task"),
    script:
        "../scripts/attribute_task.py"


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


rule logit_lens:
    input:
        model="resources/models/{model}",
        muse_en=f"results/probes/muse/{MUSE['pivot']}.parquet",
        relations=expand("results/probes/relations/{lang}.parquet", lang=LENS_RELATIONS),
    output:
        layers="results/neurons/{model}/logit_lens.parquet",
        switch="results/neurons/{model}/logit_lens_switch.parquet",
    log:
        "logs/logit_lens/{model}.log",
    benchmark:
        "results/benchmarks/logit_lens/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", probe="muse"),
        runtime=extract_resource("runtime", probe="muse"),
        gpu=extract_resource("gpu", probe="muse"),
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
        code=code_hash("logit_lens"),
    script:
        "../scripts/logit_lens.py"


rule ablate_lape:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/lape.parquet",
        texts=expand("results/probes/flores/{lang}.parquet", lang=ABLATION_LANGS),
    output:
        "results/ablation/{model}/lape.parquet",
    log:
        "logs/ablate_lape/{model}.log",
    benchmark:
        "results/benchmarks/ablate_lape/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=ablation_tokens()),
        runtime=extract_resource("runtime", n_tokens=ablation_tokens()),
        gpu=extract_resource("gpu", n_tokens=ablation_tokens()),
    params:
        model=model_params,
        languages=ABLATION_LANGS,
        split=ABLATION["split"],
        max_texts=ABLATION["max_texts"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("ablate_language"),
    script:
        "../scripts/ablate_language.py"
