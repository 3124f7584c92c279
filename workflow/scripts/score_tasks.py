"""Task-specific neurons: results/neurons/{model}/tasks.parquet (every neuron's attribution per
task, the top share selected) and task_overlap.parquet (how far tasks share their neurons)."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.select import top_share_mask
from polyneuron.neurons.tasks import neuron_frame, overlap_frame, read_attribution

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    frames, masks = [], {}
    for task, path in zip(p.tasks, snakemake.input, strict=True):
        result, meta = read_attribution(path)
        if meta.get("task", task) != task:
            raise ValueError(f"{path} holds task {meta['task']!r}, expected {task!r}")
        masks[task] = top_share_mask(result.scores, p.top_rate)
        frames.append(neuron_frame(result.signed, masks[task], task))
        log.info("%s: %d examples, %d target tokens, top %d of %d neurons, max R %.4g",
                 task, result.n_examples, result.n_tokens, int(masks[task].sum()),
                 masks[task].numel(), float(result.scores.max()))  # fmt: skip
    write_parquet(pl.concat(frames), snakemake.output.neurons)
    write_parquet(overlap_frame(masks), snakemake.output.overlap)
