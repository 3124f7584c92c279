"""Neuron statistics of one model on one shard of one language's probes, read row group by row
group and tokenised and extracted in chunks, so that memory does not grow with the corpus."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model import work
from polyneuron.model.batches import encode, shard_rows
from polyneuron.model.extract import collect_stats_chunks, count_split, iter_split_rows
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    path = snakemake.input.probes
    rows = shard_rows(count_split(path, p.split), p.shards, int(wc.k))
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    words = p.count_tokens == "word"
    columns = ["text", "word_start", "word_end"] if words else ["text"]

    def encoded_chunks():
        for chunk in iter_split_rows(path, p.split, rows, columns):
            spans = None
            if words:
                spans = list(zip(chunk["word_start"], chunk["word_end"], strict=True))
            yield encode(tokenizer, chunk["text"].to_list(), spans)

    with work.need(1, logits="none"):
        stats = collect_stats_chunks(
            model,
            tokenizer,
            encoded_chunks(),
            device,
            batch_tokens=p.batch_tokens,
            max_batch_size=p.max_batch_size,
            desc=f"{wc.model}/{wc.probe}/{wc.lang} part {wc.k}",
        )
    log.info(
        "%s: %d texts, %d counted tokens per layer on %s",
        wc.lang,
        len(rows),
        int(stats.n_tokens[0]),
        device,
    )
    write_parquet(stats.to_frame(), snakemake.output[0])
