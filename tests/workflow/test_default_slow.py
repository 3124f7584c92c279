"""Every method once on the embedded models (Gemma 3 270M and SmolLM2-135M-Instruct from PyPI)
at reduced sizes (.test/embedded/config.yaml: 4 languages, few examples): the README's main
job first (the overlap heatmap), then the rest of the workflow, every figure and the report.

The whole default workflow at full size is timed by benchmarks/workflow.py, not here."""

from __future__ import annotations

import shutil
import time

import polars as pl
import pytest
import yaml
from workflow_helpers import REPO, planned_jobs, snakemake

pytestmark = pytest.mark.slow


CONFIG = REPO / ".test/embedded/config.yaml"


def word_token_share(workdir, model: str, langs: list[str]) -> dict[str, float]:
    """Per language: of the MUSE prompt tokens that extraction counts under the default
    (count_tokens: word), the share whose characters (spaces aside) lie mostly inside the word."""
    from transformers import AutoTokenizer

    from polyneuron.model.batches import encode

    tokenizer = AutoTokenizer.from_pretrained(workdir / f"resources/models/{model}")
    share = {}
    for lang in langs:
        probes = pl.read_parquet(workdir / f"results/probes/muse/{lang}.parquet")
        texts = probes["text"].to_list()
        spans = list(zip(probes["word_start"], probes["word_end"], strict=True))
        encoded = encode(tokenizer, texts, spans)
        offsets = tokenizer(texts, return_offsets_mapping=True)["offset_mapping"]
        counted = inside = 0
        for text, (start, end), e, offs in zip(texts, spans, encoded, offsets, strict=True):
            for (a, b), count in zip(offs, e.counted, strict=True):
                if not count:
                    continue
                chars = [i for i in range(a, b) if not text[i].isspace()]
                counted += 1
                inside += sum(start <= i < end for i in chars) * 2 > len(chars)
        share[lang] = round(inside / counted, 4)
    return share


def test_every_method_on_the_embedded_models(tmp_path):
    shutil.copy(CONFIG, tmp_path / "config.yaml")
    config = yaml.safe_load(CONFIG.read_text())
    langs = config["languages"]
    start = time.perf_counter()
    snakemake(tmp_path, "--cores", "2", "results/overlap_heatmap.pdf")
    elapsed = time.perf_counter() - start

    assert (tmp_path / "results/overlap_heatmap.pdf").read_bytes().startswith(b"%PDF")
    assert planned_jobs(tmp_path, "results/overlap_heatmap.pdf") == {}
    for model in config["models"]:
        overlap = pl.read_parquet(tmp_path / f"results/neurons/{model}/overlap.parquet")
        assert overlap.height == len(langs) ** 2
        off = overlap.filter(pl.col("lang_a") != pl.col("lang_b"))["jaccard"]
        assert 0 < off.min() <= off.max() < 1  # languages share some but not all top neurons
        tokens = sum(
            pl.read_parquet(path)["n_tokens"][0]
            for path in (tmp_path / f"results/activations/{model}/text").rglob("part-*.parquet")
        )
        print(f"\n{model}: {elapsed:.0f} s for the default target, {tokens} text tokens counted")
        print(f"{model}: off-diagonal Jaccard {off.min():.3f} to {off.max():.3f}")

    start = time.perf_counter()
    snakemake(tmp_path, "--cores", "2")  # every other method too
    for model in config["models"]:
        share = word_token_share(tmp_path, model, langs)
        print(f"{model}: share of counted MUSE tokens that are the word's {share}")
        assert min(share.values()) >= 0.95
    print(f"\nthe rest of the workflow: {time.perf_counter() - start:.0f} s")
    for model in config["models"]:
        bridges = pl.read_parquet(tmp_path / f"results/neurons/{model}/bridges.parquet")
        chosen = bridges.filter("selected").unique("target").select("target", "candidate")
        assert chosen["target"].to_list() == config["bridges"]["targets"]
        ranking = bridges.unique("candidate").sort("rank")["candidate"].to_list()
        print(f"{model}: bridges {dict(chosen.iter_rows())}, ranking {ranking}")
        lape = pl.read_parquet(tmp_path / f"results/neurons/{model}/lape.parquet")
        per_lang = dict(lape.group_by("lang").len().sort("lang").iter_rows())
        print(f"{model}: language-specific neurons per language {per_lang}")
        assert lape.height > 0
        assert (tmp_path / f"results/plots/{model}/lape_layers.pdf").exists()
        tasks = pl.read_parquet(tmp_path / f"results/neurons/{model}/tasks.parquet")
        kept = tasks.group_by("group").agg(pl.col("selected").mean())["selected"]
        assert tasks["group"].n_unique() == 4  # the shipped tasks (the default)
        assert ((kept - 0.1).abs() < 0.01).all()  # the top 10% per task
        lens = pl.read_parquet(tmp_path / f"results/neurons/{model}/logit_lens.parquet")
        last = lens.group_by("probe", "lang").agg(pl.col("p_gold").last())
        assert lens["p_gold"].is_between(0, 1).all() and last["p_gold"].max() > 0
        final = dict(last.select("lang", "p_gold").iter_rows())
        print(f"{model}: logit lens, last-layer p_gold {final}")
        ablation = pl.read_parquet(tmp_path / f"results/evaluation/{model}/lape.parquet")
        assert sorted(ablation["evaluated"].unique()) == sorted(config["ablation"]["languages"])
        assert ablation["value"].is_finite().all() and ablation["baseline"].is_finite().all()
        own = pl.col("intervened") == pl.col("evaluated")
        summary = (
            ablation.filter(pl.col("metric") == "nll")
            .group_by("control")
            .agg(
                diagonal=pl.col("delta").filter(own).mean(),
                off_diagonal=pl.col("delta").filter(~own).mean(),
            )
            .sort("control")
        )
        print(f"{model}: LAPE ablation, mean ΔNLL per token\n{summary}")
    for model in config["chat_models"]:
        table = pl.read_parquet(tmp_path / f"results/neurons/{model}/refusal.parquet")
        chosen = table.filter("selected").select("group", "position", "layer", "score", "kl")
        assert sorted(chosen["group"]) == sorted(config["refusal_directions"]["languages"])
        print(f"{model}: selected refusal directions\n{chosen}")
        cosine = pl.read_parquet(tmp_path / f"results/neurons/{model}/refusal_cosine.parquet")
        selected = cosine.filter(pl.col("direction") == "selected")
        assert (
            selected.height == len(chosen) ** 2
            and selected["cosine"].is_between(-1.0001, 1.0001).all()
        )
    for model in config["models"]:
        for method in ("overlap", "bli", "values", "tasks", "relations", "xtransplant"):
            frame = pl.read_parquet(tmp_path / f"results/evaluation/{model}/{method}.parquet")
            assert frame.height > 0 and set(frame["control"]) == {"none", "random"}
            assert frame["baseline"].is_not_nan().any()
            own = pl.col("intervened") == pl.col("evaluated")
            summary = (
                frame.group_by("metric", "control")
                .agg(
                    own=pl.col("delta").filter(own).mean(),
                    other=pl.col("delta").filter(~own).mean(),
                    baseline=pl.col("baseline").mean(),
                )
                .sort("metric", "control")
            )
            print(f"{model}: {method} evaluation, mean change (own / other group)\n{summary}")
    for model in config["chat_models"]:
        refusal = pl.read_parquet(tmp_path / f"results/evaluation/{model}/refusal.parquet")
        rates = refusal.filter(pl.col("metric") == "refusal_rate", pl.col("control") == "none")
        assert rates["value"].is_between(0, 1).all()
        print(f"{model}: refusal rates\n{rates.drop('metric', 'seed', 'n_neurons')}")

    # every figure, and the report of them all
    figures = sorted(p.name for p in (tmp_path / "results/plots").rglob("*.pdf"))
    print(f"figures: {figures}")
    snakemake(tmp_path, "--report", "report.html")
    report = tmp_path / "report.html"
    assert report.stat().st_size > 100_000
    html = report.read_text(encoding="utf-8", errors="replace")
    for name in {*figures, "overlap_heatmap.pdf", "findings.md"}:
        assert name in html, name
    findings = (tmp_path / "results/findings.md").read_text(encoding="utf-8")
    for model in [*config["models"], *config["chat_models"]]:
        assert f"| {model} | " in findings, model
    print(findings)

    # what each job took: the rules' benchmark files (wall seconds, peak memory)
    rows = [
        (str(path.relative_to(tmp_path / "results/benchmarks").with_suffix("")),
         *pl.read_csv(path, separator="\t").select("s", "max_rss").row(0))
        for path in sorted((tmp_path / "results/benchmarks").rglob("*.tsv"))
    ]  # fmt: skip
    print("job: wall s, max RSS MB")
    for name, seconds, rss in rows:
        print(f"  {name}: {seconds:.1f} s, {rss:.0f} MB")
