# Stage findings -> results/findings.md: each seed paper's headline claim measured on every
# configured model's tables, with a verdict (polyneuron.findings).


# the tables the findings read, by polyneuron.findings.report.TABLES key; a method this
# configuration does not run gives an empty list (its rows say "not run in this configuration")
FINDINGS_TABLES = {
    "lape": expand("results/evaluation/{model}/lape.parquet", model=MODELS),
    "overlap_neurons": expand("results/neurons/{model}/overlap.parquet", model=MODELS),
    "bridges": (
        expand("results/neurons/{model}/bridges.parquet", model=MODELS)
        if BRIDGES["targets"]
        else []
    ),
    **{
        method: expand(f"results/evaluation/{{model}}/{method}.parquet", model=MODELS)
        for method in ("overlap", "values", "tasks", "relations")
    },
    "logit_lens": expand("results/neurons/{model}/logit_lens.parquet", model=MODELS),
    "xtransplant": (
        expand("results/evaluation/{model}/xtransplant.parquet", model=MODELS)
        if XTRANSPLANT_LANGS
        else []
    ),
    "refusal": expand("results/evaluation/{model}/refusal.parquet", model=CHAT_MODELS),
    "refusal_neurons": expand(
        "results/neurons/{model}/refusal.parquet", model=CHAT_MODELS
    ),
}


rule write_findings:
    input:
        **FINDINGS_TABLES,
    output:
        report(
            "results/findings.md",
            caption="../report/findings.rst",
            category="Findings",
        ),
    log:
        "logs/write_findings.log",
    benchmark:
        "results/benchmarks/write_findings.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    params:
        models=MODELS,
        chat_models=CHAT_MODELS,
        planted={
            name: entry["adapter"]
            for name, entry in config["chat_models"].items()
            if entry.get("adapter")
        },
        thresholds=config["findings"],
        ablation_mode=ABLATION["mode"],
        code=code_hash("write_findings"),
    script:
        "../scripts/write_findings.py"
