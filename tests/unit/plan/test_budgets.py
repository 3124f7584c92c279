"""Token budgets of the model jobs, checked against hand counts."""

from __future__ import annotations

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


def test_extraction_splits_a_language_over_its_shards():
    # 1000 MUSE prompts of 16 tokens over 3 shards: 5334 tokens each (rounded up)
    assert extraction_tokens("muse", {"max_words": 1000}, 3) == 5334
    # sentences: 64 tokens; max_texts caps; no cap: 1000 texts
    assert extraction_tokens("flores", {"max_texts": 10}, 1) == 640
    assert extraction_tokens("flores", {"max_texts": None}, 1) == 64_000
    assert extraction_tokens("tasks", {}, 2) == 32_000


def test_perplexity_ablation_counts_every_language_per_run():
    # 2 languages x 5 texts x 48 tokens, run plain + 2 x (itself + 1 seed) = 5 times
    assert ablation_tokens(2, 5, 1) == 48 * 5 * 2 * 5
    assert ablation_tokens(1, None, 0) == 48 * 60 * 1 * 2  # all 60 heldout texts


def test_generation_and_matrix_evaluations():
    # BLI: 2 languages x 3 pairs x (16 + 4) tokens, plain + (2 languages + 1 bridge) x 2 runs
    assert bli_tokens(2, 3, 4, 1, 1) == 2 * 3 * 20 * 7
    # XTransplant: 1 language, both directions, 5 facts, 12 tokens + 2 layers x (1 + 2 seeds)
    assert xtransplant_tokens(1, 5, 2, 2) == 1 * 2 * 5 * (12 + 2 * 3)
    assert xtransplant_tokens(1, None, None, 0) == 2 * 100 * (12 + 32)
    # matrices: plain + each group x (itself + seeds)
    assert value_eval_tokens(3, 2, 1, 1) == 45 * 3 * 2 * 1 * (1 + 3 * 2)
    assert task_eval_tokens(2, None, 3) == 40 * 2 * 50 * (1 + 2 * 4)
    assert relation_eval_tokens(2, 4, 1, 3, 0) == 10 * 2 * 4 * 1 * 3 * (1 + 2)


def test_refusal_jobs():
    # 2 train (x2 kinds) and 1 val prompt per kind, 1 position, 4 layers
    assert refusal_direction_tokens(2, 1, 1, n_layers=4) == 64 * (2 * 4 + 2 * (2 + 3 * 4))
    assert refusal_direction_tokens(None, 1, None, n_layers=1) == 64 * (4 * 450 + 2 * (2 + 15))
    # 2 languages, 1 seed: runs = 2 + 2 x 3 + 1 = 9; per prompt 128 + 8 x 10 generated
    assert refusal_eval_tokens(2, 3, 10, 1) == 9 * 2 * 3 * (128 + 80)
