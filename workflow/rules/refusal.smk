rule refusal_direction:
    input:
        model="resources/models/{model}",
        probes="results/probes/refusal/{lang}.parquet",
        phrases=lambda wc: refusal_probe_inputs(wc)["phrases"],
    output:
        tensors="results/directions/{model}/refusal/{lang}.safetensors",
        table="results/directions/{model}/refusal/{lang}.parquet",
    log:
        "logs/refusal_direction/{model}/{lang}.log",
    benchmark:
        "results/benchmarks/refusal_direction/{model}/{lang}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=refusal_tokens()),
        runtime=extract_resource("runtime", n_tokens=refusal_tokens()),
        gpu=extract_resource("gpu", n_tokens=refusal_tokens()),
    params:
        model=model_params,
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
        code=code_version(
            "adapters", "models", "extract", "refusal", "refusal_directions", "tensors"
        ),
    script:
        "../scripts/refusal_direction.py"


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
        code=code_version("refusal_directions", "tensors"),
    script:
        "../scripts/score_refusal.py"
