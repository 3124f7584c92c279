"""Findings: each seed paper's headline claim measured on the workflow's tables, with a verdict
(``results/findings.md``)."""
