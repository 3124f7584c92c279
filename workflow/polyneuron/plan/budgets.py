"""Token budgets: how many tokens each model job runs, estimated from the config before any
probe file exists, to size its memory and time requests (:mod:`polyneuron.plan.resources`).

Each function is the arithmetic of one job; the rule files pass it the config values. A
generated token counts :data:`GENERATED_TOKEN_COST` times a scored one: decoding one token at a
time waits on memory, not on arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping

from polyneuron.plan.resources import probe_tokens

#: tokens per text of each probe set, for sizing extraction jobs (others: sentences, 64)
TOKENS_PER_TEXT: Mapping[str, int] = {"muse": 16}
SENTENCE_TOKENS = 64
#: texts per probe set when the config caps none
DEFAULT_TEXTS = 1000
GENERATED_TOKEN_COST = 8
#: layers assumed before the model is known
DEFAULT_LAYERS = 32


def extraction_tokens(probe: str, settings: Mapping[str, object], shards: int) -> int:
    """One extraction job: a language's texts of probe set ``probe`` (``settings``: its
    ``probes.<probe>`` config, capped by ``max_words`` or ``max_texts``) over ``shards``."""
    n_texts = settings.get("max_words") or settings.get("max_texts") or DEFAULT_TEXTS
    return probe_tokens(int(n_texts), shards, TOKENS_PER_TEXT.get(probe, SENTENCE_TOKENS))


def refusal_direction_tokens(
    max_train: int | None, max_val: int, positions: int | None, n_layers: int = DEFAULT_LAYERS
) -> int:
    """One refusal-direction job: the train and validation prompts (~64 tokens, both kinds)
    once for the filter and the means, then three validation passes per candidate (~5
    post-instruction positions unless ``positions``, × ``n_layers``)."""
    n_train = 2 * (max_train or 450)
    n_val = 2 * max_val
    return SENTENCE_TOKENS * (2 * n_train + n_val * (2 + 3 * (positions or 5) * n_layers))


def ablation_tokens(n_langs: int, max_texts: int | None, n_seeds: int) -> int:
    """One perplexity ablation (LAPE or overlap sets): every language's texts (~48 tokens) once
    plain and once per intervened language and control (itself and each seed)."""
    runs = 1 + n_langs * (1 + n_seeds)
    return 48 * (max_texts or 60) * n_langs * runs


def bli_tokens(
    n_langs: int, max_pairs: int, max_new_tokens: int, n_bridge_targets: int, n_seeds: int
) -> int:
    """The BLI evaluation: every language's prompts (~16 tokens, then the answer) once plain and
    once per intervened set (each language's, each bridge's) and control."""
    runs = 1 + (n_langs + n_bridge_targets) * (1 + n_seeds)
    return n_langs * max_pairs * (16 + max_new_tokens) * runs


def xtransplant_tokens(
    n_langs: int, max_examples: int | None, n_layers: int | None, n_seeds: int
) -> int:
    """XTransplant: each language's and English's prompts (~12 tokens) once, then one token per
    prompt, direction, layer and condition (the transplant, each seed)."""
    layers = n_layers or DEFAULT_LAYERS
    return n_langs * 2 * (max_examples or 100) * (12 + layers * (1 + n_seeds))


def _matrix_runs(n_groups: int, n_seeds: int) -> int:
    """Passes of a group x group matrix: plain, then each group's set and its controls."""
    return 1 + n_groups * (1 + n_seeds)


def value_eval_tokens(n_values: int, max_questions: int | None, n_langs: int, n_seeds: int) -> int:
    """The value evaluation: ~45 tokens per question (10 per value and language unless
    ``max_questions``), per language, over the value x value matrix's passes."""
    return 45 * n_values * (max_questions or 10) * n_langs * _matrix_runs(n_values, n_seeds)


def task_eval_tokens(n_tasks: int, max_examples: int | None, n_seeds: int) -> int:
    """The task evaluation: ~40 tokens per test example (50 per task unless ``max_examples``)
    over the task x task matrix's passes."""
    return 40 * n_tasks * (max_examples or 50) * _matrix_runs(n_tasks, n_seeds)


def relation_eval_tokens(
    n_relations: int, max_examples: int | None, n_langs: int, n_fractions: int, n_seeds: int
) -> int:
    """The relation evaluation: ~10 tokens per cloze prompt (20 per relation and language unless
    ``max_examples``), per language and fraction (the plain pass once per fraction), over the
    relation x relation matrix's passes."""
    per_matrix = 10 * n_relations * (max_examples or 20) * _matrix_runs(n_relations, n_seeds)
    return per_matrix * n_langs * n_fractions


def refusal_eval_tokens(
    n_langs: int, max_prompts: int | None, max_new_tokens: int, n_seeds: int
) -> int:
    """The refusal evaluation: every language's test prompts (~64 tokens, twice: the completion
    and the refusal score) once plain per kind and once per run (each language's ablation and
    addition, the addition's controls per seed, one random ablation per seed)."""
    runs = 2 + n_langs * (2 + n_seeds) + n_seeds
    per_prompt = 2 * SENTENCE_TOKENS + GENERATED_TOKEN_COST * max_new_tokens
    return runs * n_langs * (max_prompts or 216) * per_prompt
