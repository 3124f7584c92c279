# Evaluations of the language neurons beyond LAPE: perplexity with each language's overlap set
# (its top neurons by activation probability, overlap.percentile) off.

OVERLAP_ABLATION_LANGS = EVALUATION["overlap"]["languages"] or ABLATION_LANGS


use rule ablate_lape as ablate_overlap with:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/overlap_sets.parquet",
        texts=expand(
            "results/probes/flores/{lang}.parquet", lang=OVERLAP_ABLATION_LANGS
        ),
    output:
        "results/ablation/{model}/overlap.parquet",
    log:
        "logs/ablate_overlap/{model}.log",
    benchmark:
        "results/benchmarks/ablate_overlap/{model}.tsv"
    resources:
        mem_mb=extract_resource(
            "mem_mb", n_tokens=ablation_tokens(OVERLAP_ABLATION_LANGS)
        ),
        runtime=extract_resource(
            "runtime", n_tokens=ablation_tokens(OVERLAP_ABLATION_LANGS)
        ),
        gpu=extract_resource("gpu", n_tokens=ablation_tokens(OVERLAP_ABLATION_LANGS)),
    params:
        model=model_params,
        languages=OVERLAP_ABLATION_LANGS,
        split=ABLATION["split"],
        max_texts=ABLATION["max_texts"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        batch_tokens=ABLATION["batch_tokens"],
        max_batch_size=ABLATION["max_batch_size"],
        code=code_hash("ablate_language"),
