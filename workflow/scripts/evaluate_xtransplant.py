"""XTransplant: results/evaluation/{model}/xtransplant.parquet, the object's prefix accuracy on the
relation test prompts of each language with English's FFN output of the same fact transplanted
at one layer's last position, and back, beside a control transplanting another fact's output
(polyneuron.evaluate.xtransplant.SCHEMA: ABLATION_SCHEMA and the layer)."""

from polyneuron import PolyneuronError
from polyneuron.evaluate.xtransplant import best_layers, facts_of, parallel_facts, xtransplant_frame
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    english = read_split(inp.english, p.split)
    pairs = {}
    for lang, path in zip(p.languages, inp.probes, strict=True):
        probes, parallel = parallel_facts(read_split(path, p.split), english, p.max_examples)
        if probes.height < 2:
            raise PolyneuronError(
                f"xtransplant {lang}: {probes.height} {p.split} prompt(s) share a fact with "
                "English; the control needs two or more"
            )
        pairs[lang] = (facts_of(tokenizer, probes, lang, p.answer_prefix),
                       facts_of(tokenizer, parallel, "en", p.answer_prefix))  # fmt: skip
        log.info("%s: %d facts over %d relations", lang, probes.height, probes["label"].n_unique())
    frame = xtransplant_frame(model, tokenizer, pairs, device, p.layers, p.seeds,
                              desc=f"{wc.model} xtransplant")  # fmt: skip
    write_parquet(frame, snakemake.output[0])
    for row in best_layers(frame).iter_rows(named=True):
        log.info(
            "%s → %s: best layer %s, Δaccuracy %+.3f (random control there %+.3f)",
            row["intervened"], row["evaluated"], row["layer"], row["delta"],
            row["random_delta"] if row["random_delta"] is not None else float("nan"),
        )  # fmt: skip
