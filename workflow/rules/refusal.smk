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
        code=code_hash("refusal_direction"),
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
        code=code_hash("score_refusal"),
    script:
        "../scripts/score_refusal.py"


# Tokens one evaluate_refusal job runs (a value, not a function: rule files hold no functions):
# every language's test prompts (~64 tokens, twice: the completion and the refusal score) once
# plain per kind and once per run (each language's ablation and addition, the addition's
# controls per seed, one random ablation per seed); a generated token counts 8 times, as
# decoding one token at a time waits on memory, not on arithmetic.
REFUSAL_EVAL_TOKENS = (
    (2 + len(REFUSAL_LANGS) * (2 + len(ABLATION["seeds"])) + len(ABLATION["seeds"]))
    * len(REFUSAL_LANGS)
    * (EVALUATION["refusal"]["max_prompts"] or 216)
    * (2 * 64 + 8 * EVALUATION["refusal"]["max_new_tokens"])
)


rule evaluate_refusal:
    input:
        model="resources/models/{model}",
        directions="results/neurons/{model}/refusal.safetensors",
        probes=expand("results/probes/refusal/{lang}.parquet", lang=REFUSAL_LANGS),
        phrases=lambda wc: [
            refusal_probe_inputs(Namespace(lang=lang))["phrases"]
            for lang in REFUSAL_LANGS
        ],
    output:
        "results/ablation/{model}/refusal.parquet",
    log:
        "logs/evaluate_refusal/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_refusal/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=REFUSAL_EVAL_TOKENS),
        runtime=extract_resource("runtime", n_tokens=REFUSAL_EVAL_TOKENS),
        gpu=extract_resource("gpu", n_tokens=REFUSAL_EVAL_TOKENS),
    params:
        model=model_params,
        languages=REFUSAL_LANGS,
        seeds=ABLATION["seeds"],
        addition_coeff=REFUSAL_DIRECTIONS["addition_coeff"],
        max_prompts=EVALUATION["refusal"]["max_prompts"],
        max_new_tokens=EVALUATION["refusal"]["max_new_tokens"],
        batch_size=EVALUATION["refusal"]["batch_size"],
        code=code_hash("evaluate_refusal"),
    script:
        "../scripts/evaluate_refusal.py"
