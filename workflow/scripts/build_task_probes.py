"""Task probes for one task: results/probes/tasks/{task}.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.tasks import task_probes

with script_log(snakemake.log[0]) as log:
    task = snakemake.wildcards.task
    probes = task_probes(task, snakemake.input[0], snakemake.params.test_every)
    counts = dict(probes.group_by("split").len().sort("split").iter_rows())
    log.info("%s: %d examples %s, e.g. %r", task, probes.height, counts, probes["text"][0])
    write_parquet(probes, snakemake.output[0])
