# Evaluations of the value, task and relation neurons: each group's neurons switched off (or
# scaled), beside random sets of the same per-layer counts, and every group's test prompts scored.
from polyneuron.probes.relations import RELATIONS
from polyneuron.probes.values import VALUES

VALUE_EVAL_LANGS = EVALUATION["values"]["languages"] or VALUE_PROBES["languages"]

# tokens each job runs, for its resources: the prompts once plain and once per group and
# control (its own set, each seed); ~45 tokens per value question (10 per value and language
# unless max_questions), ~40 per task example, ~10 per relation prompt (~20 per relation and
# language unless max_examples), the relations' plain pass once per fraction
VALUE_EVAL_TOKENS = (
    45
    * len(VALUES)
    * (EVALUATION["values"]["max_questions"] or 10)
    * len(VALUE_EVAL_LANGS)
    * (1 + len(VALUES) * (1 + len(ABLATION["seeds"])))
)
TASK_EVAL_TOKENS = (
    40
    * len(TASKS["names"])
    * (EVALUATION["tasks"]["max_examples"] or 50)
    * (1 + len(TASKS["names"]) * (1 + len(ABLATION["seeds"])))
)
N_EVAL_RELATIONS = len(
    RELATIONS.keys() | set(RELATION_PROBES.get("extra_relations") or [])
)
RELATION_EVAL_TOKENS = (
    10
    * N_EVAL_RELATIONS
    * (EVALUATION["relations"]["max_examples"] or 20)
    * len(EVALUATION["relations"]["languages"])
    * len(EVALUATION["relations"]["fractions"])
    * (1 + N_EVAL_RELATIONS * (1 + len(ABLATION["seeds"])))
)


rule evaluate_values:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/values.parquet",
        probes=expand("results/probes/values/{lang}.parquet", lang=VALUE_EVAL_LANGS),
    output:
        "results/ablation/{model}/values.parquet",
    log:
        "logs/evaluate_values/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_values/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=VALUE_EVAL_TOKENS),
        runtime=extract_resource("runtime", n_tokens=VALUE_EVAL_TOKENS),
        gpu=extract_resource("gpu", n_tokens=VALUE_EVAL_TOKENS),
    params:
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
        probes=expand("results/probes/tasks/{task}.parquet", task=TASKS["names"]),
    output:
        "results/ablation/{model}/tasks.parquet",
    log:
        "logs/evaluate_tasks/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_tasks/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=TASK_EVAL_TOKENS),
        runtime=extract_resource("runtime", n_tokens=TASK_EVAL_TOKENS),
        gpu=extract_resource("gpu", n_tokens=TASK_EVAL_TOKENS),
    params:
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
        probes=expand(
            "results/probes/relations/{lang}.parquet",
            lang=EVALUATION["relations"]["languages"],
        ),
    output:
        "results/ablation/{model}/relations.parquet",
    log:
        "logs/evaluate_relations/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_relations/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=RELATION_EVAL_TOKENS),
        runtime=extract_resource("runtime", n_tokens=RELATION_EVAL_TOKENS),
        gpu=extract_resource("gpu", n_tokens=RELATION_EVAL_TOKENS),
    params:
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
