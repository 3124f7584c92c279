rule plot_overlap_heatmap:
    input:
        expand("results/neurons/{model}/overlap.parquet", model=MODELS),
    output:
        report(
            "results/overlap_heatmap.pdf",
            caption="../report/overlap_heatmap.rst",
            category="Language neurons",
        ),
    log:
        "logs/plot_overlap_heatmap.log",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        models=MODELS,
        languages=LANGS,
        probe=config["overlap"]["probe"],
        code=code_version("plots"),
    script:
        "../scripts/plot_overlap_heatmap.py"


rule plot_lape_layers:
    input:
        neurons="results/neurons/{model}/lape.parquet",
        info="resources/model_info/{model}.json",
    output:
        report(
            "results/plots/{model}/lape_layers.pdf",
            caption="../report/lape_layers.rst",
            category="Language neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_lape_layers/{model}.log",
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        code=code_version("plots"),
    script:
        "../scripts/plot_lape_layers.py"
