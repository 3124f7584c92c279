"""The workflow end to end on tiny models: full run, no-op rerun, partial reruns, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import write_dictionaries
from workflow_helpers import REPO, base_config, planned_jobs, snakemake, write_config

LANGS = ["en", "de", "fr", "ru"]
RELATION_LANGS = ["en", "de", "fr", "es", "zh"]  # the shipped relation facts (default)
VALUE_LANGS = ["en", "zh"]  # the shipped value stories (default)
TASKS = ["sentiment", "topic", "paraphrase", "translation"]  # the shipped tasks (default)
REFUSAL_LANGS = ["en", "de"]
EVALUATION_JOBS = [  # the jobs that switch neuron sets or directions off
    "evaluate_lape",
    "evaluate_overlap",
    "evaluate_bli",
    "evaluate_values",
    "evaluate_tasks",
    "evaluate_relations",
    "evaluate_xtransplant",
    "evaluate_refusal",
]
MODEL_FIGURES = [  # per model, beyond lape_layers and the ablation matrices
    "values",
    "relation_cumulativity",
    "xtransplant",
    "task_overlap",
    "logit_lens",
    "cross_method",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_models, tiny_chat_model) -> Path:
    """A workdir where every default target has been built on the tiny llama (and the
    refusal directions on a tiny chat llama)."""
    workdir = tmp_path_factory.mktemp("workflow")
    write_dictionaries(workdir / "muse")
    write_config(
        workdir, base_config({"tiny-llama": tiny_models["llama"]}, {"tiny-chat": tiny_chat_model})
    )
    snakemake(workdir, "--cores", "2")
    return workdir


def test_task_neurons_and_their_overlap(finished):
    tasks = pl.read_parquet(finished / "results/neurons/tiny-llama/tasks.parquet")
    info = json.loads((finished / "resources/model_info/tiny-llama.json").read_text())
    n = info["n_layers"] * info["n_neurons_per_layer"]
    per_task = tasks.group_by("group").agg(n=pl.len(), kept=pl.col("selected").sum())
    assert sorted(per_task["group"]) == sorted(TASKS)
    assert set(per_task["n"]) == {n}
    assert set(per_task["kept"]) == {round(n * 0.1)}
    overlap = pl.read_parquet(finished / "results/neurons/tiny-llama/task_overlap.parquet")
    assert overlap.height == len(TASKS) ** 2


def test_logit_lens_decodes_every_layer_per_probe_and_language(finished):
    lens = pl.read_parquet(finished / "results/neurons/tiny-llama/logit_lens.parquet")
    info = json.loads((finished / "resources/model_info/tiny-llama.json").read_text())
    per = lens.group_by("probe", "lang").len()
    muse = per.filter(pl.col("probe") == "muse")
    assert sorted(muse["lang"]) == sorted(set(LANGS) - {"en"})
    assert sorted(per.filter(pl.col("probe") == "relations")["lang"]) == sorted(RELATION_LANGS)
    assert set(per["len"]) == {info["n_layers"]}
    assert lens["p_gold"].is_between(0, 1).all()
    switch = pl.read_parquet(finished / "results/neurons/tiny-llama/logit_lens_switch.parquet")
    assert switch.height == per.height


def test_lape_ablation_has_the_full_matrix_beside_random_controls(finished):
    frame = pl.read_parquet(finished / "results/evaluation/tiny-llama/lape.parquet")
    lape = pl.read_parquet(finished / "results/neurons/tiny-llama/lape.parquet")
    intervened = sorted(lape["lang"].unique())
    assert sorted(frame["intervened"].unique()) == intervened
    # itself and three seeds, ΔNLL per token and Δppl
    assert frame.height == len(intervened) * (1 + 3) * len(LANGS) * 2
    assert frame["metric"].to_list()[:2] == ["nll", "perplexity"]
    assert sorted(frame["evaluated"].unique()) == sorted(LANGS)
    none = frame.filter(pl.col("control") == "none")
    assert none["seed"].null_count() == none.height
    assert sorted(frame.filter(pl.col("control") == "random")["seed"].unique()) == [0, 1, 2]
    assert ((frame["delta"] - (frame["value"] - frame["baseline"])).abs() < 1e-9).all()
    assert (frame["ci_low"] <= frame["ci_high"]).all()
    per_lang = dict(lape.group_by("lang").len().iter_rows())
    sizes = frame.group_by("intervened").agg(pl.col("n_neurons").unique())
    for lang, n in sizes.iter_rows():
        assert n == [per_lang[lang]]  # random sets are as large as the language's own


def test_overlap_sets_and_their_ablation(finished):
    sets = pl.read_parquet(finished / "results/neurons/tiny-llama/overlap_sets.parquet")
    overlap = pl.read_parquet(finished / "results/neurons/tiny-llama/overlap.parquet")
    sizes = dict(sets.group_by("lang").len().iter_rows())
    same = overlap.filter(pl.col("lang_a") == pl.col("lang_b"))
    assert sizes == dict(same.select("lang_a", "n_a").iter_rows())
    frame = pl.read_parquet(finished / "results/evaluation/tiny-llama/overlap.parquet")
    assert frame.height == len(LANGS) * (1 + 3) * len(LANGS) * 2  # ΔNLL and Δppl
    per_set = dict(frame.group_by("intervened").agg(pl.col("n_neurons").unique()).iter_rows())
    assert per_set == {lang: [n] for lang, n in sizes.items()}


EVALUATIONS = {  # table -> its metrics and the columns it adds to the ablation schema
    "bli": ({"p_at_1"}, []),
    "values": ({"p_supported"}, ["lang"]),
    "tasks": ({"loss", "accuracy"}, []),
    "relations": ({"accuracy"}, ["lang", "fraction"]),
    "xtransplant": ({"accuracy"}, ["layer"]),
}


@pytest.mark.parametrize("method", sorted(EVALUATIONS))
def test_every_evaluation_has_its_rows_beside_random_controls(finished, method):
    from polyneuron.evaluate.matrix import ABLATION_SCHEMA

    frame = pl.read_parquet(finished / f"results/evaluation/tiny-llama/{method}.parquet")
    metrics, extra = EVALUATIONS[method]
    assert frame.columns == [*ABLATION_SCHEMA, *extra]
    assert set(frame["metric"]) <= metrics and frame.height > 0
    assert set(frame["control"]) == {"none", "random"}
    assert sorted(frame.filter(pl.col("control") == "random")["seed"].unique()) == [0, 1, 2]
    assert ((frame["delta"] - (frame["value"] - frame["baseline"])).abs() < 1e-9).all()
    assert (frame["ci_low"] <= frame["ci_high"]).all()
    # every condition is measured on the same examples as its baseline
    per_cell = frame.group_by("evaluated", "metric", *extra).agg(pl.col("n_texts").n_unique())
    assert (per_cell["n_texts"] == 1).all()


def test_refusal_evaluation_has_the_transfer_matrix_and_the_addition(finished):
    frame = pl.read_parquet(finished / "results/evaluation/tiny-chat/refusal.parquet")
    assert set(frame["metric"]) == {"refusal_rate", "refusal_score"}
    rates = frame.filter(pl.col("metric") == "refusal_rate")
    assert rates["value"].is_between(0, 1).all()
    own = rates.filter(pl.col("control") == "none")
    for intervention, prompts in (("ablation", "harmful"), ("addition", "harmless")):
        cells = own.filter(pl.col("intervention") == intervention)
        assert set(cells["prompts"]) == {prompts}
        assert sorted(cells.select("intervened", "evaluated").rows()) == sorted(
            (a, b) for a in REFUSAL_LANGS for b in REFUSAL_LANGS
        )


def test_report_has_every_figure(finished):
    snakemake(finished, "--report", "report.html")
    html = (finished / "report.html").read_text(encoding="utf-8", errors="replace")
    figures = sorted(p.name for p in (finished / "results/plots").rglob("*.pdf"))
    assert figures == sorted(
        [
            "lape_layers.pdf",
            *(f"ablation_{m}.pdf" for m in ("lape", "overlap", "bli", "tasks")),
            "values.pdf",
            "relation_cumulativity.pdf",
            "xtransplant.pdf",
            "task_overlap.pdf",
            "logit_lens.pdf",
            "cross_method.pdf",
            "refusal.pdf",  # the chat model's; no bridges.pdf: no bridge targets here
        ]
    )
    for name in [*figures, "overlap_heatmap.pdf", "findings.md"]:
        assert name in html, name


def test_findings_name_every_claim_for_every_model(finished):
    from polyneuron.findings.report import CLAIMS

    text = (finished / "results/findings.md").read_text(encoding="utf-8")
    verdicts = ("reproduced", "not reproduced", "not measurable on this model", "not run in")
    for claim in CLAIMS:
        assert f"## {claim.key}" in text, claim.key
    for model in ("tiny-llama", "tiny-chat"):  # each claim's table has one row per model
        rows = [line for line in text.splitlines() if line.startswith(f"| {model} | ")]
        assert len(rows) == len(CLAIMS), model
        assert all(line.split(" | ")[1].startswith(verdicts) for line in rows), rows


def test_refusal_directions_per_language_of_the_chat_model(finished):
    table = pl.read_parquet(finished / "results/neurons/tiny-chat/refusal.parquet")
    assert sorted(table["group"].unique()) == sorted(REFUSAL_LANGS)
    assert table.group_by("group").agg(pl.col("selected").sum())["selected"].to_list() == [1, 1]
    from polyneuron.tensors import read_tensors

    tensors, meta = read_tensors(finished / "results/neurons/tiny-chat/refusal.safetensors")
    assert set(tensors) == {f"{lang}.{kind}" for lang in REFUSAL_LANGS
                            for kind in ("directions", "selected")}  # fmt: skip
    chosen = json.loads(meta["selected"])
    for lang in REFUSAL_LANGS:
        pos, layer = chosen[lang]["position"], chosen[lang]["layer"]
        n_post = tensors[f"{lang}.directions"].shape[0]
        assert tensors[f"{lang}.selected"].equal(tensors[f"{lang}.directions"][n_post + pos, layer])
    cosine = pl.read_parquet(finished / "results/neurons/tiny-chat/refusal_cosine.parquet")
    same = cosine.filter(pl.col("lang_a") == pl.col("lang_b"))
    assert (same.filter(pl.col("direction") == "selected")["cosine"] - 1).abs().max() < 1e-6
    # layer 0's inputs at the template tokens are their embeddings: no direction, no cosine
    assert same.filter(pl.col("layer") == 0)["cosine"].is_nan().all()
    assert (same.filter(pl.col("layer") > 0)["cosine"] - 1).abs().max() < 1e-6
    assert not (finished / "results/neurons/tiny-chat/lape.parquet").exists()  # chat only


def test_full_run_writes_every_stage(finished):
    for lang in LANGS:  # the text probes: what LAPE and the overlap sets are found on
        probes = pl.read_parquet(finished / f"results/probes/text/{lang}.parquet")
        assert {"id", "pair_id", "lang", "text"} <= set(probes.columns)
        assert probes.height == 100 and set(probes["split"]) == {"train"}  # .test/tiny: 100
    shard = pl.read_parquet(finished / "results/activations/tiny-llama/text/de/part-1.parquet")
    assert shard.columns == ["layer", "neuron", "n_tokens", "n_active", "act_sum", "act_sqsum"]
    info = json.loads((finished / "resources/model_info/tiny-llama.json").read_text())
    assert shard.height == info["n_layers"] * info["n_neurons_per_layer"]
    lape = pl.read_parquet(finished / "results/neurons/tiny-llama/lape.parquet")
    assert lape.columns == ["layer", "neuron", "lang", "act_prob", "entropy"]
    overlap = pl.read_parquet(finished / "results/neurons/tiny-llama/overlap.parquet")
    assert overlap.height == len(LANGS) ** 2
    assert (finished / "results/overlap_heatmap.pdf").read_bytes().startswith(b"%PDF")
    assert (finished / "results/plots/tiny-llama/lape_layers.pdf").read_bytes().startswith(b"%PDF")
    assert (finished / "resources/models/tiny-llama/model.safetensors").exists()


def test_value_neurons_score_every_neuron_per_value_and_language(finished):
    values = pl.read_parquet(finished / "results/neurons/tiny-llama/values.parquet")
    info = json.loads((finished / "resources/model_info/tiny-llama.json").read_text())
    n = info["n_layers"] * info["n_neurons_per_layer"]
    per_value = values.group_by("group", "lang", "mask").agg(
        n=pl.len(), kept=pl.col("selected").sum()
    )
    # the twelve values, en and zh, each under the reference's decision and semantic masks
    assert per_value.height == 12 * len(VALUE_LANGS) * 2
    assert set(per_value["mask"]) == {"decision", "semantic"}
    assert set(per_value["n"]) == {n}
    assert set(per_value["kept"]) <= {round(n * 0.01)} and per_value["kept"].sum() > 0
    chosen = values.filter("selected")
    assert (chosen["score"] < float("inf")).all()
    assert chosen["assigned"].null_count() == 0
    assert set(chosen["assigned"]) <= {"support", "conflict", "both"}
    # decision masks act on the outer layers, semantic masks on the rest, never both
    acting = values.filter("acts").group_by("layer").agg(pl.col("mask").unique())
    assert all(len(masks) == 1 for masks in acting["mask"])


def test_relation_neurons_score_every_neuron_per_relation_and_language(finished):
    from transformers import AutoConfig

    neurons = pl.read_parquet(finished / "results/neurons/tiny-llama/relations.parquet")
    config = AutoConfig.from_pretrained(finished / "resources/models/tiny-llama")
    # the reference's pool: the outputs of gate_proj, up_proj and down_proj in every layer
    widths = {"gate": config.intermediate_size, "up": config.intermediate_size,
              "down": config.hidden_size}  # fmt: skip
    pool = config.num_hidden_layers * sum(widths.values())
    per_group = neurons.group_by("group", "lang").agg(
        n=pl.len(), kept=pl.col("selected").sum(), ap=pl.col("score").max(),
        ranks=pl.col("rank").sort(), cut=pl.col("rank").filter("selected").max(),
    )  # fmt: skip
    assert set(per_group["lang"]) == set(RELATION_LANGS)
    assert per_group["group"].n_unique() == 8  # the shipped relations
    assert set(per_group["n"]) == {pool}
    kept = max(1, round(3000 * pool / 835584))  # 3000 of LLaMA-2 7B's 835,584, scaled down
    assert set(per_group["kept"]) == {kept} and set(per_group["cut"]) == {kept}
    assert all(ranks.to_list() == list(range(1, pool + 1)) for ranks in per_group["ranks"])
    assert ((per_group["ap"] > 0) & (per_group["ap"] <= 1)).all()
    per_module = neurons.group_by("module").agg(pl.col("neuron").max() + 1)
    assert dict(per_module.iter_rows()) == widths
    evaluation = pl.read_parquet(finished / "results/evaluation/tiny-llama/relations.parquet")
    random = evaluation.filter(pl.col("control") == "random")
    assert set(random["control_draw"]) == {"uniform"}  # per layer and module
    overlap = pl.read_parquet(finished / "results/neurons/tiny-llama/relation_overlap.parquet")
    assert overlap.height == 8 * len(RELATION_LANGS) ** 2
    same = overlap.filter(pl.col("lang_a") == pl.col("lang_b"))
    assert (same["jaccard"] == 1).all()


def test_shards_add_up_to_the_whole_probe_set(finished):
    de = pl.read_parquet(finished / "results/probes/text/de.parquet")
    parts = [
        pl.read_parquet(finished / f"results/activations/tiny-llama/text/de/part-{k}.parquet")
        for k in range(2)
    ]
    # every probe text is counted in exactly one shard: no text lost, none twice
    assert parts[0]["n_tokens"][0] > 0 and parts[1]["n_tokens"][0] > 0
    from transformers import AutoTokenizer

    from polyneuron.model.batches import encode

    tokenizer = AutoTokenizer.from_pretrained(finished / "resources/models/tiny-llama")
    expected = sum(sum(e.counted) for e in encode(tokenizer, de["text"].to_list()))
    assert parts[0]["n_tokens"][0] + parts[1]["n_tokens"][0] == expected


def test_rerun_plans_nothing(finished):
    assert planned_jobs(finished) == {}


def test_threshold_change_reruns_only_the_jobs_that_use_it(finished):
    config_path = finished / "config.yaml"
    original = config_path.read_text()
    try:
        config_path.write_text(original + "lape:\n  top_rate: 0.05\n")
        assert planned_jobs(finished) == {
            "score_lape": 1,
            "plot_lape_layers": 1,
            "evaluate_lape": 1,
            "evaluate_bli": 1,  # with each language's LAPE neurons off
            "plot_ablation": 2,  # lape, bli
            "plot_cross_method": 1,
            "write_findings": 1,  # every evaluation feeds the findings
        }
        config_path.write_text(original + "ablation:\n  seeds: [0, 1]\n")
        # every deactivation has its random controls: all evaluations and their figures
        assert planned_jobs(finished) == {
            **{job: 1 for job in EVALUATION_JOBS},
            "plot_ablation": 4,
            "plot_values": 1,
            "plot_relation_cumulativity": 1,
            "plot_xtransplant": 1,
            "plot_refusal": 1,
            "write_findings": 1,
        }
        config_path.write_text(original + "overlap:\n  percentile: 0.9\n")
        assert planned_jobs(finished) == {
            "score_overlap": 1,
            "plot_overlap_heatmap": 1,
            "evaluate_overlap": 1,
            "plot_ablation": 1,
            "write_findings": 1,
        }
        config_path.write_text(original.replace("max_val: 4", "max_val: 4\n  kl_threshold: 0.5"))
        assert planned_jobs(finished) == {
            "find_refusal_direction": 2,
            "score_refusal": 1,
            "evaluate_refusal": 1,
            "plot_refusal": 1,
            "write_findings": 1,
        }
        config_path.write_text(original + "task_neurons:\n  top_rate: 0.2\n")
        assert planned_jobs(finished) == {
            "score_tasks": 1,
            "evaluate_tasks": 1,
            "plot_ablation": 1,
            "plot_task_overlap": 1,
            "plot_cross_method": 1,
            "write_findings": 1,
        }
        config_path.write_text(original.replace("max_texts: 100", "max_texts: 100\n    every: 2"))
        # another sample of the text: its probes and statistics, and everything found on them
        plan = planned_jobs(finished)
        assert plan["build_text_probes"] == len(LANGS)
        assert plan["extract_activations"] == len(LANGS) * 2
        assert plan["score_lape"] == plan["score_overlap"] == 1
        assert "build_muse_probes" not in plan and "prepare_model" not in plan
    finally:
        config_path.write_text(original)
    assert planned_jobs(finished) == {}


def checkout_copy(tmp_path: Path) -> Path:
    """A copy of the workflow's code (Snakefile, rules, scripts, library) in ``tmp_path``."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "workflow", copy / "workflow", ignore=ignore)
    shutil.copy(REPO / "Snakefile", copy / "Snakefile")
    shutil.copytree(REPO / "envs", copy / "envs")
    (copy / "data").symlink_to(REPO / "data")  # the shipped data the config's paths fall back to
    return copy


def test_editing_a_library_module_reruns_exactly_the_jobs_that_import_it(finished, tmp_path):
    copy = checkout_copy(tmp_path)
    # The shipped data resolves next to the copy's Snakefile, a new path for the same files:
    # leave out the trigger on the set of input paths, keep mtime, params (the code hashes) and
    # code.
    snakefile = ("--snakefile", str(copy / "Snakefile"),
                 "--rerun-triggers", "mtime", "params", "code", "software-env")  # fmt: skip
    assert planned_jobs(finished, *snakefile) == {}  # where the code lies does not matter
    everything = planned_jobs(finished, *snakefile, "--forceall")
    records = copy / "workflow/polyneuron/probes/records.py"
    records.write_text(records.read_text() + "\n# a comment\n")
    # every probe builder reads its source through probes.records; everything after them
    # depends on a probe set, except preparing the models
    plan = planned_jobs(finished, *snakefile)
    assert {rule for rule in plan if rule.startswith(("build_", "translate_"))} == {
        rule for rule in everything if rule.startswith(("build_", "translate_"))
    }
    assert plan == {rule: n for rule, n in everything.items() if rule != "prepare_model"}
    records.write_text(records.read_text().removesuffix("\n# a comment\n"))
    assert planned_jobs(finished, *snakefile) == {}
    plots = copy / "workflow/polyneuron/plots/common.py"
    plots.write_text(plots.read_text() + "\n# a comment\n")
    plan = planned_jobs(finished, *snakefile)
    assert plan and all(rule.startswith("plot_") for rule in plan), plan


def test_jobs_import_the_library_of_the_checkout_that_runs_them(scratch, tmp_path, monkeypatch):
    """With polyneuron installed from one clone, a second clone's jobs run the second's code."""
    copy = checkout_copy(tmp_path)
    init = copy / "workflow/polyneuron/__init__.py"
    init.write_text(
        init.read_text()
        + "\nimport os as _os, sys as _sys\n"
        + "with open(_os.environ['POLYNEURON_WHICH'], 'a') as _f:\n"
        + "    _f.write(f'{__file__} {_sys.argv[0]}\\n')\n"
    )
    which = tmp_path / "which.txt"
    monkeypatch.setenv("POLYNEURON_WHICH", str(which))
    snakemake(scratch, "--snakefile", str(copy / "Snakefile"), "--cores", "1",
              "results/probes/muse/de.parquet")  # fmt: skip
    imports = [line.split(" ", 1) for line in which.read_text().splitlines()]
    jobs = [path for path, argv in imports if "build_muse_probes" in argv]
    assert jobs and all(path == str(init) for path in jobs), imports


def test_adding_a_model_plans_only_its_jobs_and_the_figure(finished, tiny_models):
    config_path = finished / "config.yaml"
    original = config_path.read_text()
    try:
        chat = yaml.safe_load(original)["chat_models"]
        config = base_config({"tiny-llama": tiny_models["llama"], "tiny-gpt2": tiny_models["gpt2"]})
        write_config(finished, {**yaml.safe_load(original), "models": config["models"]})
        assert yaml.safe_load(config_path.read_text())["chat_models"] == chat
        assert planned_jobs(finished) == {
            "prepare_model": 1,
            "extract_activations": len(LANGS) * 2,
            # per-prompt outputs of the MLP projections for relations
            "extract_pool_examples": len(RELATION_LANGS),
            "score_relations": 1,
            "extract_groups": len(VALUE_LANGS),  # statistics per value and condition
            "score_values": 1,
            "attribute_task": len(TASKS),  # gradient attribution per task
            "score_tasks": 1,
            "score_logit_lens": 1,
            "evaluate_lape": 1,  # LAPE neurons off: perplexity matrix and random controls
            "evaluate_overlap": 1,  # the same for each language's overlap set
            "score_lape": 1,
            "score_overlap": 1,
            **{job: 1 for job in EVALUATION_JOBS if job != "evaluate_refusal"},  # not a chat model
            "plot_lape_layers": 1,
            "plot_overlap_heatmap": 1,
            "plot_ablation": 4,
            **{f"plot_{name}": 1 for name in MODEL_FIGURES},
            "write_findings": 1,
        }
    finally:
        config_path.write_text(original)


def test_swapping_a_model_then_back_reruns_nothing_for_the_kept_outputs(finished, tiny_models):
    config_path = finished / "config.yaml"
    original = config_path.read_text()
    try:
        write_config(
            finished,
            {**yaml.safe_load(original), **base_config({"tiny-qwen": tiny_models["qwen2"]})},
        )
        snakemake(finished, "--cores", "2")
        heatmap = pl.read_parquet(finished / "results/neurons/tiny-qwen/overlap.parquet")
        assert heatmap.height == len(LANGS) ** 2
        assert planned_jobs(finished) == {}
    finally:
        config_path.write_text(original)
    # back to the first model: its neuron files are still valid, only the figure and the
    # findings (across models) are rebuilt
    assert planned_jobs(finished) == {"plot_overlap_heatmap": 1, "write_findings": 1}
    snakemake(finished, "--cores", "2")


def test_every_neuron_and_evaluation_table_is_documented_column_by_column(finished):
    """Each table under results/neurons/ and results/evaluation/ has its path on a method page
    under docs/methods/, and every column of it is named there (or, for the evaluation tables'
    shared columns, on interventions.md)."""
    pages = {p: p.read_text() for p in (REPO / "docs/methods").glob("*.md")}
    shared = (REPO / "docs/methods/interventions.md").read_text()
    tables = sorted((finished / "results").glob("*/tiny-*/*.parquet"))
    assert {t.parent.parent.name for t in tables} >= {"neurons", "evaluation"}
    problems = []
    for table in tables:
        pattern = f"results/{table.parent.parent.name}/{{model}}/{table.name}"
        texts = [text for text in pages.values() if f"`{pattern}`" in text]
        if not texts:
            problems.append(f"{pattern}: on no page of docs/methods/")
            continue
        if table.parent.parent.name == "evaluation":
            texts.append(shared)
        missing = [
            c for c in pl.read_parquet_schema(table) if not any(f"`{c}`" in t for t in texts)
        ]
        if missing:
            problems.append(f"{pattern}: columns not documented: {missing}")
    assert not problems, "\n".join(problems)
