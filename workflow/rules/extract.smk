# Stage extract -> results/activations/: statistics of every neuron over each probe set
# (per shard, per example, per group) and the task attributions (gradient x activation).


rule extract_activations:
    input:
        model="resources/models/{model}",
        probes="results/probes/{probe}/{lang}.parquet",
    output:
        "results/activations/{model}/{probe}/{lang}/part-{k}.parquet",
    log:
        "logs/extract_activations/{model}/{probe}/{lang}/part-{k}.log",
    benchmark:
        "results/benchmarks/extract_activations/{model}/{probe}/{lang}/part-{k}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(),
    params:
        model=model_params,
        shards=SHARDS,
        batch_tokens=config["extraction"]["batch_tokens"],
        max_batch_size=config["extraction"]["max_batch_size"],
        split=config["extraction"]["split"],
        count_tokens=lambda wc: config["probes"][wc.probe].get("count_tokens", "prompt"),
        code=code_hash("extract_activations"),
    script:
        "../scripts/extract_activations.py"


rule extract_examples:
    input:
        model="resources/models/{model}",
        probes="results/probes/{probe}/{lang}.parquet",
    output:
        "results/activations/{model}/{probe}/{lang}.examples.safetensors",
    log:
        "logs/extract_examples/{model}/{probe}/{lang}.log",
    benchmark:
        "results/benchmarks/extract_examples/{model}/{probe}/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(),
    params:
        model=model_params,
        batch_tokens=config["extraction"]["batch_tokens"],
        max_batch_size=config["extraction"]["max_batch_size"],
        split=config["extraction"]["split"],
        count_tokens=lambda wc: config["probes"][wc.probe].get("count_tokens", "prompt"),
        pool="activation",
        code=code_hash("extract_examples"),
    script:
        "../scripts/extract_examples.py"


# relation neurons' reference pool: the outputs of the MLP's gate, up and down projections
rule extract_pool_examples:
    input:
        model="resources/models/{model}",
        probes="results/probes/{probe}/{lang}.parquet",
    output:
        "results/activations/{model}/{probe}/{lang}.pool.safetensors",
    log:
        "logs/extract_pool_examples/{model}/{probe}/{lang}.log",
    benchmark:
        "results/benchmarks/extract_pool_examples/{model}/{probe}/{lang}.tsv"
    wildcard_constraints:
        probe="relations",
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(),
    params:
        model=model_params,
        batch_tokens=config["extraction"]["batch_tokens"],
        max_batch_size=config["extraction"]["max_batch_size"],
        split=config["extraction"]["split"],
        count_tokens=lambda wc: config["probes"][wc.probe].get("count_tokens", "prompt"),
        pool="reference",
        code=code_hash("extract_examples"),
    script:
        "../scripts/extract_examples.py"


# the reference's positives: the relation prompts the model answers correctly
rule extract_relation_answers:
    input:
        model="resources/models/{model}",
        probes="results/probes/relations/{lang}.parquet",
    output:
        "results/activations/{model}/relations/{lang}.answers.parquet",
    log:
        "logs/extract_relation_answers/{model}/{lang}.log",
    benchmark:
        "results/benchmarks/extract_relation_answers/{model}/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(probe="relations"),
    params:
        model=model_params,
        batch_tokens=config["extraction"]["batch_tokens"],
        max_batch_size=config["extraction"]["max_batch_size"],
        split=config["extraction"]["split"],
        answer_prefix=LENS["relations_prefix"],
        code=code_hash("extract_relation_answers"),
    script:
        "../scripts/extract_relation_answers.py"


rule extract_groups:
    input:
        model="resources/models/{model}",
        probes="results/probes/{probe}/{lang}.parquet",
    output:
        "results/activations/{model}/{probe}/{lang}.groups.parquet",
    log:
        "logs/extract_groups/{model}/{probe}/{lang}.log",
    benchmark:
        "results/benchmarks/extract_groups/{model}/{probe}/{lang}.tsv"
    wildcard_constraints:
        probe="values",
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        **model_job(),
    params:
        model=model_params,
        group_by=["label", "condition"],
        batch_tokens=config["extraction"]["batch_tokens"],
        max_batch_size=config["extraction"]["max_batch_size"],
        split=config["extraction"]["split"],
        code=code_hash("extract_groups"),
    script:
        "../scripts/extract_groups.py"


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
        **model_job(probe="tasks", backward=True),
    params:
        model=model_params,
        split=config["extraction"]["split"],
        batch_tokens=config["task_neurons"]["batch_tokens"],
        max_batch_size=config["task_neurons"]["max_batch_size"],
        code=code_hash("attribute_task"),
    script:
        "../scripts/attribute_task.py"
