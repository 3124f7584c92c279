# Stage plots -> results/plots/ (and the overlap heatmap, results/overlap_heatmap.pdf): every
# figure, with its report caption.


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
    benchmark:
        "results/benchmarks/plot_overlap_heatmap.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        models=MODELS,
        languages=LANGS,
        probe=config["overlap"]["probe"],
        code=code_hash("plot_overlap_heatmap"),
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
    benchmark:
        "results/benchmarks/plot_lape_layers/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        languages=LANGS,
        code=code_hash("plot_lape_layers"),
    script:
        "../scripts/plot_lape_layers.py"


# the ablation tables drawn as intervened x evaluated matrices: their metric, what their rows
# and columns are, the figure's title and its report category
ABLATION_FIGURES = {
    "lape": {
        "metric": "nll",
        "group": "language (ISO 639-1)",
        "title": "language-specific (LAPE) neurons off — change of NLL per token",
        "category": "Language neurons",
    },
    "overlap": {
        "metric": "nll",
        "group": "language (ISO 639-1)",
        "title": "language overlap neurons off — change of NLL per token",
        "category": "Language neurons",
    },
    "bli": {
        "metric": "p_at_1",
        "group": "language (ISO 639-1)",
        "title": "LAPE neurons off — change of X→English translation P@1",
        "category": "Language neurons",
    },
    "tasks": {
        "metric": "loss",
        "group": "task",
        "title": "task-specific neurons off — change of target loss",
        "category": "Concept neurons",
    },
}


# every figure for the configured models, chat models adding the refusal figure (the target
# rule `figures`; `snakemake --report` includes the figures of the targets it is given). A list,
# not a function: the linter keeps functions out of rule files.
FIGURE_NAMES = [
    "lape_layers",
    *(f"ablation_{method}" for method in ABLATION_FIGURES),
    "values",
    "relation_cumulativity",
    "task_overlap",
    "logit_lens",
    "cross_method",
    *(["bridges"] if BRIDGES["targets"] else []),
    *(["xtransplant"] if config["evaluation"]["xtransplant"]["languages"] else []),
]
ALL_FIGURES = [
    "results/overlap_heatmap.pdf",
    *expand("results/plots/{model}/{name}.pdf", model=MODELS, name=FIGURE_NAMES),
    *expand("results/plots/{model}/refusal.pdf", model=CHAT_MODELS),
]


rule figures:
    input:
        ALL_FIGURES,


rule plot_ablation:
    input:
        "results/evaluation/{model}/{method}.parquet",
    output:
        report(
            "results/plots/{model}/ablation_{method}.pdf",
            caption="../report/ablation.rst",
            category=lambda wildcards: ABLATION_FIGURES[wildcards.method]["category"],
            subcategory="{model}",
        ),
    log:
        "logs/plot_ablation/{model}/{method}.log",
    benchmark:
        "results/benchmarks/plot_ablation/{model}/{method}.tsv"
    wildcard_constraints:
        method="|".join(ABLATION_FIGURES),
    conda:
        "../../envs/polyneuron.yaml"
    params:
        metric=lambda wildcards: ABLATION_FIGURES[wildcards.method]["metric"],
        group=lambda wildcards: ABLATION_FIGURES[wildcards.method]["group"],
        title=lambda wildcards: ABLATION_FIGURES[wildcards.method]["title"],
        code=code_hash("plot_ablation"),
    script:
        "../scripts/plot_ablation.py"


rule plot_values:
    input:
        "results/evaluation/{model}/values.parquet",
    output:
        report(
            "results/plots/{model}/values.pdf",
            caption="../report/values.rst",
            category="Concept neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_values/{model}.log",
    benchmark:
        "results/benchmarks/plot_values/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        metric="p_supported",
        code=code_hash("plot_values"),
    script:
        "../scripts/plot_values.py"


rule plot_relation_cumulativity:
    input:
        "results/evaluation/{model}/relations.parquet",
    output:
        report(
            "results/plots/{model}/relation_cumulativity.pdf",
            caption="../report/relation_cumulativity.rst",
            category="Concept neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_relation_cumulativity/{model}.log",
    benchmark:
        "results/benchmarks/plot_relation_cumulativity/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        metric="accuracy",
        code=code_hash("plot_relation_cumulativity"),
    script:
        "../scripts/plot_relation_cumulativity.py"


rule plot_refusal:
    input:
        ablation="results/evaluation/{model}/refusal.parquet",
        cosine="results/neurons/{model}/refusal_cosine.parquet",
    output:
        report(
            "results/plots/{model}/refusal.pdf",
            caption="../report/refusal.rst",
            category="Refusal",
            subcategory="{model}",
        ),
    log:
        "logs/plot_refusal/{model}.log",
    benchmark:
        "results/benchmarks/plot_refusal/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        code=code_hash("plot_refusal"),
    script:
        "../scripts/plot_refusal.py"


rule plot_xtransplant:
    input:
        "results/evaluation/{model}/xtransplant.parquet",
    output:
        report(
            "results/plots/{model}/xtransplant.pdf",
            caption="../report/xtransplant.rst",
            category="Language neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_xtransplant/{model}.log",
    benchmark:
        "results/benchmarks/plot_xtransplant/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        metric="accuracy",
        code=code_hash("plot_xtransplant"),
    script:
        "../scripts/plot_xtransplant.py"


rule plot_bridges:
    input:
        "results/neurons/{model}/bridges.parquet",
    output:
        report(
            "results/plots/{model}/bridges.pdf",
            caption="../report/bridges.rst",
            category="Language neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_bridges/{model}.log",
    benchmark:
        "results/benchmarks/plot_bridges/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        window=BRIDGES["window"],
        normalised=BRIDGES["normalised"],
        code=code_hash("plot_bridges"),
    script:
        "../scripts/plot_bridges.py"


rule plot_task_overlap:
    input:
        "results/neurons/{model}/task_overlap.parquet",
    output:
        report(
            "results/plots/{model}/task_overlap.pdf",
            caption="../report/task_overlap.rst",
            category="Concept neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_task_overlap/{model}.log",
    benchmark:
        "results/benchmarks/plot_task_overlap/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        code=code_hash("plot_task_overlap"),
    script:
        "../scripts/plot_task_overlap.py"


rule plot_logit_lens:
    input:
        "results/neurons/{model}/logit_lens.parquet",
    output:
        report(
            "results/plots/{model}/logit_lens.pdf",
            caption="../report/logit_lens.rst",
            category="Language neurons",
            subcategory="{model}",
        ),
    log:
        "logs/plot_logit_lens/{model}.log",
    benchmark:
        "results/benchmarks/plot_logit_lens/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        code=code_hash("plot_logit_lens"),
    script:
        "../scripts/plot_logit_lens.py"


rule plot_cross_method:
    input:
        lape="results/neurons/{model}/lape.parquet",
        values="results/neurons/{model}/values.parquet",
        tasks="results/neurons/{model}/tasks.parquet",
        relations="results/neurons/{model}/relations.parquet",
        info="resources/model_info/{model}.json",
    output:
        report(
            "results/plots/{model}/cross_method.pdf",
            caption="../report/cross_method.rst",
            category="Across methods",
            subcategory="{model}",
        ),
    log:
        "logs/plot_cross_method/{model}.log",
    benchmark:
        "results/benchmarks/plot_cross_method/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        code=code_hash("plot_cross_method"),
    script:
        "../scripts/plot_cross_method.py"
