"""results/findings.md: each seed paper's headline claim measured on every configured model,
with its interval, its control and a verdict (polyneuron.findings)."""

from polyneuron.findings.claims import Thresholds
from polyneuron.findings.report import findings_frame, read_tables, render_markdown
from polyneuron.io import write_text
from polyneuron.logs import script_log

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    paths = {key: list(getattr(snakemake.input, key)) for key in snakemake.input.keys()}  # noqa: SIM118 (a Namedlist iterates over its values)
    thresholds = Thresholds(
        **{**p.thresholds, "high_resource": tuple(p.thresholds["high_resource"])},
        ablation_mode=p.ablation_mode,
    )
    frame = findings_frame(read_tables(paths), p.models, p.chat_models, thresholds, p.planted)
    for row in frame.iter_rows(named=True):
        log.info("%s / %s: %s (%s)", row["claim"], row["model"], row["verdict"], row["reason"])
    write_text(render_markdown(frame, thresholds), snakemake.output[0])
