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
