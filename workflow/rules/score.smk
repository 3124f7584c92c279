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
        code=code_version("stats", "lape"),
    script:
        "../scripts/score_lape.py"


rule score_overlap:
    input:
        lambda wc: activation_shards(wc.model, config["overlap"]["probe"]),
    output:
        "results/neurons/{model}/overlap.parquet",
    log:
        "logs/score_overlap/{model}.log",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        shards=SHARDS,
        percentile=config["overlap"]["percentile"],
        code=code_version("stats", "lape", "overlap"),
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
        code=code_version("stats", "lape", "overlap", "hsic", "extract", "tensors"),
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
        code=code_version("relation_neurons", "extract", "tensors"),
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
        code=code_version("lape", "value_neurons"),
    script:
        "../scripts/score_values.py"
