rule prepare_model:
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
        mem_mb=prepare_resource("mem_mb"),
        runtime=prepare_resource("runtime"),
    params:
        source=lambda wc: model_entry(config, wc.model)["source"],
        trust_remote_code=lambda wc: model_entry(config, wc.model).get(
            "trust_remote_code", False
        ),
        revision=lambda wc: model_entry(config, wc.model).get("revision"),
        code=code_hash("prepare_model"),
    script:
        "../scripts/prepare_model.py"
