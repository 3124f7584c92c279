# Evaluations on translation and relation prompts: BLI accuracy with language neurons off, and
# XTransplant (English FFN output transplanted into each language and back).

BLI = EVALUATION["bli"]
BLI_LANGS = BLI["languages"] or [lang for lang in LANGS if lang != MUSE["pivot"]]
XTRANSPLANT = EVALUATION["xtransplant"]
XTRANSPLANT_LANGS = XTRANSPLANT["languages"]

# tokens each job runs, for its resources (a list, not a function: the linter keeps functions
# out of rule files). BLI: every language's prompts (~16 tokens, then the answer) once plain and
# once per intervened set (each language's, each bridge's) and control; XTransplant: each
# language's and English's prompts (~12 tokens) once, then one token per prompt, direction,
# layer (~32 unless configured) and condition (the transplant, each seed).
BLI_TOKENS = (
    len(BLI_LANGS)
    * BLI["max_pairs"]
    * (16 + BLI["max_new_tokens"])
    * (1 + (len(BLI_LANGS) + len(BRIDGES["targets"])) * (1 + len(ABLATION["seeds"])))
)
XTRANSPLANT_TOKENS = (
    len(XTRANSPLANT_LANGS)
    * 2
    * (XTRANSPLANT["max_examples"] or 100)
    * (12 + len(XTRANSPLANT["layers"] or range(32)) * (1 + len(ABLATION["seeds"])))
)


rule evaluate_bli:
    input:
        model="resources/models/{model}",
        neurons="results/neurons/{model}/lape.parquet",
        dictionaries=lambda wc: [
            muse_dictionaries(Namespace(lang=lang))[lang] for lang in BLI_LANGS
        ],
        bridges=(
            "results/neurons/{model}/bridges.parquet" if BRIDGES["targets"] else []
        ),
        shards=(
            expand(
                "results/activations/{{model}}/{probe}/{lang}/part-{k}.parquet",
                probe=BRIDGES["probe"],
                lang=BRIDGE_LANGS,
                k=range(SHARDS),
            )
            if BRIDGES["targets"]
            else []
        ),
    output:
        "results/ablation/{model}/bli.parquet",
    log:
        "logs/evaluate_bli/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_bli/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=BLI_TOKENS),
        runtime=extract_resource("runtime", n_tokens=BLI_TOKENS),
        gpu=extract_resource("gpu", n_tokens=BLI_TOKENS),
    params:
        model=model_params,
        languages=BLI_LANGS,
        pivot=MUSE["pivot"],
        names={lang: NAMES[lang] for lang in [MUSE["pivot"], *BLI_LANGS]},
        max_words=MUSE["max_words"],
        drop_identical=MUSE["drop_identical"],
        on_malformed=MUSE["on_malformed"],
        max_pairs=BLI["max_pairs"],
        max_new_tokens=BLI["max_new_tokens"],
        answer_prefix=BLI["answer_prefix"],
        batch_size=BLI["batch_size"],
        seeds=ABLATION["seeds"],
        mode=ABLATION["mode"],
        factor=ABLATION["factor"],
        bridge_targets=BRIDGES["targets"],
        bridge_languages=BRIDGE_LANGS,
        bridge_percentile=BRIDGES["percentile"],
        shards=SHARDS,
        code=code_hash("evaluate_bli"),
    script:
        "../scripts/evaluate_bli.py"


rule xtransplant:
    input:
        model="resources/models/{model}",
        probes=expand("results/probes/relations/{lang}.parquet", lang=XTRANSPLANT_LANGS),
        english="results/probes/relations/en.parquet",
    output:
        "results/ablation/{model}/xtransplant.parquet",
    log:
        "logs/xtransplant/{model}.log",
    benchmark:
        "results/benchmarks/xtransplant/{model}.tsv"
    conda:
        "../../envs/polyneuron.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=extract_resource("mem_mb", n_tokens=XTRANSPLANT_TOKENS),
        runtime=extract_resource("runtime", n_tokens=XTRANSPLANT_TOKENS),
        gpu=extract_resource("gpu", n_tokens=XTRANSPLANT_TOKENS),
    params:
        model=model_params,
        languages=XTRANSPLANT_LANGS,
        split="test",
        layers=XTRANSPLANT["layers"],
        max_examples=XTRANSPLANT["max_examples"],
        answer_prefix=LENS["relations_prefix"],
        seeds=ABLATION["seeds"],
        code=code_hash("xtransplant"),
    script:
        "../scripts/xtransplant.py"
