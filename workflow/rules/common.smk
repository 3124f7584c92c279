import functools
import os
import sys
from argparse import Namespace
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

LIBRARY = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, LIBRARY)

from polyneuron import PolyneuronError
from polyneuron.plan.codehash import CodeHasher
from polyneuron.plan.library import put_library_first
from polyneuron.plan.config import (
    check_config,
    model_entry,
    model_spec,
    resolve_path,
    schema_problem,
)
from polyneuron.plan.languages import language_names
from polyneuron.probes.muse import find_dictionary
from polyneuron.probes.parallel import text_file
from polyneuron.probes.refusal import (
    SOURCE_LANG,
    package_file,
    phrase_file,
    precomputed_files,
)
from polyneuron.probes.relations import RELATIONS, fact_files
from polyneuron.plan.budgets import (
    ablation_tokens,
    bli_tokens,
    extraction_tokens,
    refusal_direction_tokens,
    refusal_eval_tokens,
    relation_eval_tokens,
    task_eval_tokens,
    value_eval_tokens,
    xtransplant_tokens,
)
from polyneuron.plan.resources import extract_request, known_n_params, prepare_request
from polyneuron.probes.tasks import task_file
from polyneuron.probes.translate import TRANSLATORS
from polyneuron.probes.values import VALUES, value_files

put_library_first(LIBRARY, os.environ)  # the jobs import this checkout's polyneuron

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
try:
    validate(config, str(SCHEMA))  # also fills in the defaults
except (
    WorkflowError
):  # one short message instead of Snakemake's dump of schema and config
    problem = schema_problem(config, yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))
    raise WorkflowError(f"invalid config: {problem}") from None
try:
    check_config(config)
except PolyneuronError as err:
    raise WorkflowError(f"invalid config: {err}") from None


MODELS = list(config["models"])
CHAT_MODELS = list(config["chat_models"])
LANGS = config["languages"]
SHARDS = config["extraction"]["shards"]
MUSE = config["probes"]["muse"]
FLORES = config["probes"]["flores"]
TEXT = config["probes"]["text"]
TASKS = config["probes"]["tasks"]
RELATION_PROBES = config["probes"]["relations"]
RELATION_NEURONS = config["relation_neurons"]
VALUE_PROBES = config["probes"]["values"]
REFUSAL = config["probes"]["refusal"]
TRANSLATOR_SETTINGS = config["translators"]
BRIDGES = config["bridges"]
# each target language and the candidate bridges it is scored against
BRIDGE_PAIRS = {
    target: [lang for lang in (BRIDGES["candidates"] or LANGS) if lang != target]
    for target in BRIDGES["targets"]
}
BRIDGE_LANGS = [
    lang
    for lang in LANGS
    if lang in BRIDGE_PAIRS or any(lang in c for c in BRIDGE_PAIRS.values())
]
REFUSAL_DIRECTIONS = config["refusal_directions"]
REFUSAL_LANGS = REFUSAL_DIRECTIONS["languages"] or REFUSAL["languages"]
LENS = config["logit_lens"]
LENS_MUSE = LENS["muse_languages"] or LANGS
LENS_RELATIONS = (
    RELATION_PROBES["languages"]
    if LENS["relation_languages"] is None
    else LENS["relation_languages"]
)
ABLATION = config["ablation"]
ABLATION_LANGS = ABLATION["languages"] or LANGS
NAMES = language_names(config["language_names"])
CODE = CodeHasher(Path(workflow.basedir) / "workflow", "polyneuron")


def code_hash(script):
    """Hash of the job script `script` and every polyneuron module it imports, directly or
    not (read from the import graph): editing a module reruns exactly the jobs that run it.
    Snakemake itself tracks only the script's own text."""
    return CODE.digest(Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py")


def model_params(wildcards):
    spec = model_spec(wildcards.model, model_entry(config, wildcards.model))
    return {
        "dtype": spec.dtype,
        "device": spec.device,
        "device_map": spec.device_map,
        "trust_remote_code": spec.trust_remote_code,
    }


def model_adapter(wildcards):
    """The LoRA adapter file merged into a model when it is prepared ([] for none)."""
    adapter = model_entry(config, wildcards.model).get("adapter")
    return [str(resolve_path(adapter, workflow.basedir))] if adapter else []


def chat_params(wildcards):
    """What a chat model's prompts are wrapped in besides its template."""
    return {"system_prompt": model_entry(config, wildcards.model).get("system_prompt")}


def activation_shards(model, probe):
    return expand(
        "results/activations/{model}/{probe}/{lang}/part-{k}.parquet",
        model=model,
        probe=probe,
        lang=LANGS,
        k=range(SHARDS),
    )


def all_targets():
    return [
        "results/overlap_heatmap.pdf",
        *expand("results/plots/{model}/lape_layers.pdf", model=MODELS),
        *(
            expand("results/neurons/{model}/bridges.parquet", model=MODELS)
            if BRIDGES["targets"]
            else []
        ),
        *expand("results/neurons/{model}/relations.parquet", model=MODELS),
        *expand("results/neurons/{model}/values.parquet", model=MODELS),
        *expand("results/neurons/{model}/tasks.parquet", model=MODELS),
        *expand("results/neurons/{model}/logit_lens.parquet", model=MODELS),
        *expand("results/neurons/{model}/refusal.parquet", model=CHAT_MODELS),
        *expand(
            "results/evaluation/{model}/{method}.parquet",
            model=MODELS,
            method=["lape", "overlap", "bli", "values", "tasks", "relations"],
        ),
        *(
            expand("results/evaluation/{model}/xtransplant.parquet", model=MODELS)
            if EVALUATION["xtransplant"]["languages"]
            else []
        ),
        *expand("results/evaluation/{model}/refusal.parquet", model=CHAT_MODELS),
        *ALL_FIGURES,  # plots.smk: every figure, the report's contents
        "results/findings.md",  # findings.smk: each seed claim measured, with a verdict
    ]


def probe_languages(wildcards):
    """Languages whose dictionaries shape this language's probes (all, for the pivot)."""
    if wildcards.lang == MUSE["pivot"]:
        return LANGS
    return [MUSE["pivot"], wildcards.lang]


def muse_dictionaries(wildcards):
    """The dictionary of each non-pivot language in :func:`probe_languages`, by language."""
    folder = resolve_path(MUSE["dir"], workflow.basedir)
    try:
        return {
            lang: str(find_dictionary(folder, MUSE["pivot"], lang)[0])
            for lang in probe_languages(wildcards)
            if lang != MUSE["pivot"]
        }
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def flores_texts(wildcards):
    """This language's text file and, for an aligned corpus, the first configured language's
    (whose line count it must match)."""
    folder = resolve_path(FLORES["dir"], workflow.basedir)
    langs = {"text": wildcards.lang}
    if FLORES["aligned"]:
        langs["reference"] = LANGS[0]
    try:
        return {
            key: str(text_file(folder, FLORES["pattern"], lang, FLORES["flores_codes"]))
            for key, lang in langs.items()
        }
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def text_corpus(wildcards):
    """This language's file of the monolingual text corpus."""
    folder = resolve_path(TEXT["dir"], workflow.basedir)
    try:
        path = text_file(folder, TEXT["pattern"], wildcards.lang, key="probes.text")
        return {"text": str(path)}
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def task_data(wildcards):
    """``{dir}/{task}.jsonl``; an unknown task fails naming the tasks that exist."""
    folder = resolve_path(TASKS["dir"], workflow.basedir)
    try:
        return str(task_file(folder, wildcards.task))
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def relation_fact_files(wildcards):
    """The fact files (*.csv, *.jsonl) in probes.relations.dir, sorted by name."""
    try:
        folder = resolve_path(RELATION_PROBES["dir"], workflow.basedir)
        return [str(path) for path in fact_files(folder)]
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def value_probe_files(wildcards):
    """The value files (*.jsonl, C-voice *.xlsx) in probes.values.dir, sorted by name."""
    try:
        folder = resolve_path(VALUE_PROBES["dir"], workflow.basedir)
        return [str(path) for path in value_files(folder)]
    except PolyneuronError as err:
        raise WorkflowError(str(err)) from None


def all_probe_sets():
    """Every probe set's files for its configured languages (target rule ``probes``)."""
    return [
        *expand("results/probes/muse/{lang}.parquet", lang=LANGS),
        *expand("results/probes/flores/{lang}.parquet", lang=LANGS),
        *expand("results/probes/text/{lang}.parquet", lang=LANGS),
        *expand("results/probes/values/{lang}.parquet", lang=VALUE_PROBES["languages"]),
        *expand(
            "results/probes/relations/{lang}.parquet", lang=RELATION_PROBES["languages"]
        ),
        *expand("results/probes/tasks/{task}.parquet", task=TASKS["names"]),
        *expand("results/probes/refusal/{lang}.parquet", lang=REFUSAL["languages"]),
    ]


def _workflow_error(function):
    """Input functions report a :class:`PolyneuronError` as a WorkflowError (no traceback)."""

    @functools.wraps(function)  # Snakemake reads the signature through __wrapped__
    def wrapped(wildcards):
        try:
            return function(wildcards)
        except PolyneuronError as err:
            raise WorkflowError(str(err)) from None

    return wrapped


@_workflow_error
def refusal_sources(wildcards):
    """The harmful benchmarks' files (a path, or "installed": the package's copy) and the
    harmless set."""
    files = {}
    for name in REFUSAL["harmful"]:
        value = REFUSAL[name]
        files[name] = str(
            package_file(name)
            if value == "installed"
            else resolve_path(value, workflow.basedir)
        )
    files["harmless"] = str(resolve_path(REFUSAL["harmless"], workflow.basedir))
    return files


def translator_for(lang):
    return REFUSAL["translator_for"].get(lang, REFUSAL["translator"])


def translator_settings(wildcards):
    """Only this translator's settings, so changing another one reruns nothing here."""
    settings = dict(TRANSLATOR_SETTINGS[wildcards.translator])
    settings.pop("models", None)  # hf: the per-language model is its own param
    return settings


def hf_model_for(wildcards):
    if wildcards.translator != "hf":
        return None
    hf = TRANSLATOR_SETTINGS["hf"]
    return hf["models"].get(wildcards.lang, hf["model"])


def translator_model_params(wildcards):
    if wildcards.translator != "llm":
        return None
    return model_params(Namespace(model=TRANSLATOR_SETTINGS["llm"]["model"]))


def translation_gpus(wildcards):
    if wildcards.translator == "precomputed":
        return 0
    if wildcards.translator == "hf":
        return 0 if TRANSLATOR_SETTINGS["hf"]["device"] == "cpu" else 1
    spec = model_spec(
        TRANSLATOR_SETTINGS["llm"]["model"],
        model_entry(config, TRANSLATOR_SETTINGS["llm"]["model"]),
    )
    return 0 if "cpu" in (spec.device, spec.device_map) else 1


@_workflow_error
def translation_inputs(wildcards):
    """precomputed: that language's files; llm: the prepared model folder; hf: nothing (the
    MT model is loaded by id or path)."""
    if wildcards.translator == "precomputed":
        folder = resolve_path(
            TRANSLATOR_SETTINGS["precomputed"]["dir"], workflow.basedir
        )
        return {
            "files": [str(path) for path in precomputed_files(folder, wildcards.lang)]
        }
    if wildcards.translator == "llm":
        return {"model": f"resources/models/{TRANSLATOR_SETTINGS['llm']['model']}"}
    return {}


@_workflow_error
def refusal_probe_inputs(wildcards):
    """The language's refusal phrases and, except for the source language, its translation by
    the translator configured for it."""
    folder = resolve_path(REFUSAL["phrases"], workflow.basedir)
    inputs = {"phrases": str(phrase_file(folder, wildcards.lang))}
    if wildcards.lang != SOURCE_LANG:
        translator = translator_for(wildcards.lang)
        inputs["translation"] = (
            f"results/translations/refusal/{translator}/{wildcards.lang}.parquet"
        )
    return inputs


def model_size(model):
    """Parameter count: exact once prepare_model has written model_info, else what the
    model's name spells (7b, 270m), else None (the requests' defaults)."""
    return known_n_params(
        f"resources/model_info/{model}.json", model_entry(config, model)["source"]
    )


def prepare_job():
    """prepare_model's requests (mem_mb, runtime), scaled with the model."""

    def request(name):
        def get(wildcards, attempt):
            spec = model_spec(wildcards.model, model_entry(config, wildcards.model))
            req = prepare_request(
                model_size(wildcards.model), spec.dtype, attempt=attempt
            )
            return getattr(req, name)

        return get

    return {name: request(name) for name in ("mem_mb", "runtime")}


def model_job(tokens=None, probe=None, backward=False):
    """A model job's requests (mem_mb, runtime, gpu), scaled with the model and the tokens it
    runs: `tokens`, else one extraction job's of probe set `probe` (default: the job's {probe}
    wildcard); `backward`: gradients too. No GPU for a model configured with device: cpu.
    """

    def request(name):
        def get(wildcards, attempt):
            spec = model_spec(wildcards.model, model_entry(config, wildcards.model))
            if tokens is None:
                name_ = probe or wildcards.probe
                n_tokens = extraction_tokens(
                    name_, config["probes"].get(name_, {}), SHARDS
                )
            else:
                n_tokens = tokens
            req = extract_request(
                model_size(wildcards.model),
                spec.dtype,
                n_tokens=n_tokens,
                use_gpu="cpu" not in (spec.device, spec.device_map),
                attempt=attempt,
                backward=backward,
            )
            return getattr(req, name)

        return get

    return {name: request(name) for name in ("mem_mb", "runtime", "gpu")}


EVALUATION = config["evaluation"]
# the activation statistics that matched controls and mean-ablation read (every language)
LEVEL_SHARDS = expand(
    "results/activations/{{model}}/{probe}/{lang}/part-{k}.parquet",
    probe=config["lape"]["probe"],
    lang=LANGS,
    k=range(SHARDS),
)
CONTROL_PARAMS = dict(
    level_languages=LANGS,
    level_shards=SHARDS,
    control=ABLATION["control"],
    control_bins=ABLATION["control_bins"],
)
SEEDS = len(ABLATION["seeds"])
OVERLAP_ABLATION_LANGS = EVALUATION["overlap"]["languages"] or ABLATION_LANGS
BLI = EVALUATION["bli"]
BLI_LANGS = BLI["languages"] or [lang for lang in LANGS if lang != MUSE["pivot"]]
XTRANSPLANT = EVALUATION["xtransplant"]
XTRANSPLANT_LANGS = XTRANSPLANT["languages"]
VALUE_EVAL_LANGS = EVALUATION["values"]["languages"] or VALUE_PROBES["languages"]
RELATION_EVAL = EVALUATION["relations"]
N_EVAL_RELATIONS = len(
    RELATIONS.keys() | set(RELATION_PROBES.get("extra_relations") or [])
)

# tokens each model job runs (polyneuron.plan.budgets), for its requests
BUDGETS = {
    "find_refusal_direction": refusal_direction_tokens(
        REFUSAL_DIRECTIONS["max_train"],
        REFUSAL_DIRECTIONS["max_val"],
        REFUSAL_DIRECTIONS["positions"],
    ),
    "evaluate_lape": ablation_tokens(len(ABLATION_LANGS), ABLATION["max_texts"], SEEDS),
    "evaluate_overlap": ablation_tokens(
        len(OVERLAP_ABLATION_LANGS), ABLATION["max_texts"], SEEDS
    ),
    "evaluate_bli": bli_tokens(
        len(BLI_LANGS),
        BLI["max_pairs"],
        BLI["max_new_tokens"],
        len(BRIDGES["targets"]),
        SEEDS,
    ),
    "evaluate_xtransplant": xtransplant_tokens(
        len(XTRANSPLANT_LANGS),
        XTRANSPLANT["max_examples"],
        len(XTRANSPLANT["layers"] or []) or None,
        SEEDS,
    ),
    "evaluate_values": value_eval_tokens(
        len(VALUES),
        EVALUATION["values"]["max_questions"],
        len(VALUE_EVAL_LANGS),
        SEEDS,
    ),
    "evaluate_tasks": task_eval_tokens(
        len(TASKS["names"]), EVALUATION["tasks"]["max_examples"], SEEDS
    ),
    "evaluate_relations": relation_eval_tokens(
        N_EVAL_RELATIONS,
        RELATION_EVAL["max_examples"],
        len(RELATION_EVAL["languages"]),
        len(RELATION_EVAL["fractions"]),
        SEEDS,
    ),
    "evaluate_refusal": refusal_eval_tokens(
        len(REFUSAL_LANGS),
        EVALUATION["refusal"]["max_prompts"],
        EVALUATION["refusal"]["max_new_tokens"],
        SEEDS,
    ),
}
