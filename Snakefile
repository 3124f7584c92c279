# polyneuron: find, score and test the neurons of multilingual language models.
# Data flows one way, one rule file per stage, each writing its own folder:
# models -> probes -> extract -> score -> evaluate -> plots -> findings.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"  # validates the config first


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    lang=r"[a-z]{2,3}",
    probe=r"[a-z0-9_]+",
    k=r"\d+",


include: "workflow/rules/models.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/findings.smk"


rule all:
    default_target: True
    input:
        all_targets(),
