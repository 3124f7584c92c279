# Stage models -> resources/models/ (and resources/model_info/): every model the workflow
# studies, prepared once as a safetensors folder.


rule prepare_model:
    input:
        adapter=model_adapter,
    output:
        folder=directory("resources/models/{model}"),
        info="resources/model_info/{model}.json",
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    resources:
        **prepare_job(),
    params:
        source=lambda wc: model_entry(config, wc.model)["source"],
        trust_remote_code=lambda wc: model_entry(config, wc.model).get(
            "trust_remote_code", False
        ),
        revision=lambda wc: model_entry(config, wc.model).get("revision"),
        adapter=model_adapter,
        code=code_hash("prepare_model"),
    script:
        "../scripts/prepare_model.py"
