"""The perplexity evaluation of language-specific (LAPE, overlap) neuron sets.

- :func:`text_nll` scores texts: per text, the summed next-token negative log-likelihood and
  the number of tokens predicted (every token after the first, under the model's own
  tokenizer with its special tokens, as :func:`polyneuron.model.extract.encode` adds them). It runs
  a plain forward pass, so whatever intervention hooks are open apply;
- :func:`mean_nll` is the corpus-level, token-weighted mean NLL per token of such scores (what
  LAPE's reference reports) and :func:`perplexity` its exponential; :func:`bootstrap_nll` and
  :func:`bootstrap_perplexity` give their percentile-bootstrap intervals over texts, or those
  of the change from a baseline on the same resampled texts;
- :func:`ablation_matrix` switches language-specific (LAPE) neuron sets off one language at a
  time, evaluates every language's texts, and does the same with random sets of the same
  per-layer sizes (:func:`polyneuron.evaluate.interventions.random_control`) over several seeds
  (:func:`polyneuron.evaluate.matrix.intervention_matrix`); its rows, assembled by
  :func:`language_ablation_rows`, follow :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA`,
  two per evaluated language: metric ``nll`` (mean NLL per token; its ``delta`` is ΔNLL, the
  change that averages across languages) and ``perplexity`` (Δppl, for reading);
- :func:`summarize_ablation` condenses them: per intervened language and condition, the mean
  change (ΔNLL for these tables) on its own language and on the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron.evaluate import bootstrap
from polyneuron.evaluate.bootstrap import _as_numpy
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet
from polyneuron.evaluate.matrix import (
    ABLATION_SCHEMA,
    _check_control,
    intervention_matrix,
    set_size,
)
from polyneuron.model.adapters import decoder_body, logit_rows, unembed
from polyneuron.model.batches import Encoded, collate, encode, pad_token_id, plan_batches

__all__ = [
    "TextNll",
    "ablation_matrix",
    "bootstrap_nll",
    "bootstrap_perplexity",
    "encoded_nll",
    "language_ablation_rows",
    "mean_nll",
    "perplexity",
    "summarize_ablation",
    "text_nll",
]

#: per text: (summed next-token NLL, float64; tokens predicted, int64)
TextNll = tuple[torch.Tensor, torch.Tensor]


def encoded_nll(
    model: nn.Module,
    encoded: Sequence[Encoded],
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> TextNll:
    """:func:`text_nll` of texts already tokenised by :func:`polyneuron.model.extract.encode`."""
    n = len(encoded)
    nll = torch.zeros(n, dtype=torch.float64)
    n_tokens = torch.tensor([max(len(e.input_ids) - 1, 0) for e in encoded], dtype=torch.long)
    body = decoder_body(model)
    batches = plan_batches([len(e.input_ids) for e in encoded], batch_tokens, max_batch_size)
    with torch.inference_mode():
        for indices in batches:
            batch, _ = collate([encoded[i] for i in indices], pad_id, device)
            ids, real = batch["input_ids"], batch["attention_mask"].bool()
            if ids.shape[1] < 2:
                continue  # one token each: nothing to predict
            hidden = body(**batch, use_cache=False)[0]  # final-normed last hidden state
            # position p predicts token p + 1 when both are real (right padding)
            predicts = real[:, 1:] & real[:, :-1]
            rows = torch.arange(len(indices), device=ids.device)[:, None].expand_as(predicts)
            rows, targets = rows[predicts], ids[:, 1:][predicts]
            states = hidden[:, :-1][predicts.to(hidden.device)]
            sums = torch.zeros(len(indices), dtype=torch.float64, device=ids.device)
            chunk = logit_rows(model)
            for start in range(0, len(targets), chunk):
                logits = unembed(model, states[start : start + chunk]).float()
                logp = torch.log_softmax(logits, dim=-1)
                picked = logp.gather(-1, targets[start : start + chunk, None].to(logp.device))
                sums.index_add_(
                    0, rows[start : start + chunk], -picked[:, 0].to(sums.device, torch.float64)
                )
            nll[torch.tensor(indices)] = sums.cpu()
    return nll, n_tokens


def text_nll(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> TextNll:
    """Per text, the summed next-token negative log-likelihood (float64, nats) and the number
    of tokens predicted (int64): every token after the first, of the ids
    :func:`polyneuron.model.extract.encode` gives (special tokens such as BOS included, so with a
    BOS the first word is predicted too). Texts are batched by length with right padding;
    padding is never predicted nor read. A plain forward pass under ``inference_mode``: open
    interventions apply. Logits are float32, computed a chunk of positions at a time."""
    encoded = encode(tokenizer, list(texts))
    return encoded_nll(
        model, encoded, pad_token_id(tokenizer), device, batch_tokens, max_batch_size
    )


def mean_nll(
    nll_sum: torch.Tensor | np.ndarray | Sequence[float],
    n_tokens: torch.Tensor | np.ndarray | Sequence[float],
) -> float:
    """Corpus-level mean NLL per token ``Σ nll / Σ tokens`` (token-weighted); NaN without
    tokens."""
    nll, tokens = _as_numpy(nll_sum), _as_numpy(n_tokens)
    if nll.shape != tokens.shape:
        raise ValueError(f"{nll.size} NLL sums but {tokens.size} token counts")
    total = tokens.sum()
    return float(nll.sum() / total) if total > 0 else float("nan")


def perplexity(
    nll_sum: torch.Tensor | np.ndarray | Sequence[float],
    n_tokens: torch.Tensor | np.ndarray | Sequence[float],
) -> float:
    """Corpus-level perplexity ``exp(Σ nll / Σ tokens)`` (token-weighted); NaN without tokens."""
    value = mean_nll(nll_sum, n_tokens)
    return math.exp(value) if not math.isnan(value) else value


def _bootstrap_corpus(
    nll_sum, n_tokens, baseline_nll, n_boot: int, seed: int, alpha: float, exp: bool
) -> tuple[float, float, float]:
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    nll, tokens = _as_numpy(nll_sum), _as_numpy(n_tokens)
    if nll.shape != tokens.shape:
        raise ValueError(f"{nll.size} NLL sums but {tokens.size} token counts")
    base = None if baseline_nll is None else _as_numpy(baseline_nll)
    if base is not None and base.shape != nll.shape:
        raise ValueError(f"{nll.size} NLL sums but {base.size} baseline NLL sums")
    n = nll.size
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    statistic = perplexity if exp else mean_nll

    def corpus(nll_total: np.ndarray, token_total: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            per_token = np.where(token_total > 0, nll_total / token_total, np.nan)
            return np.exp(per_token) if exp else per_token

    value = statistic(nll, tokens)
    if base is not None:
        value -= statistic(base, tokens)
    rng = np.random.default_rng(seed)
    block = max(1, bootstrap._BLOCK_ELEMENTS // n)  # the one block size, bootstrap's
    boot = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        token_total = tokens[idx].sum(axis=1)
        boot[start:stop] = corpus(nll[idx].sum(axis=1), token_total)
        if base is not None:
            boot[start:stop] -= corpus(base[idx].sum(axis=1), token_total)
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return (value, float("nan"), float("nan"))
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return (value, float(low), float(high))


def bootstrap_perplexity(
    nll_sum: torch.Tensor | np.ndarray | Sequence[float],
    n_tokens: torch.Tensor | np.ndarray | Sequence[float],
    baseline_nll: torch.Tensor | np.ndarray | Sequence[float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(value, low, high): the corpus perplexity of the texts — or, with ``baseline_nll`` (the
    same texts' NLL sums under the baseline), its change ``ppl - ppl_baseline`` — and the
    percentile-bootstrap ``1 - alpha`` interval over texts.

    ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))`` resamples the texts (in
    blocks of rows, one stream); each resample's perplexities are recomputed from its summed
    NLL and tokens, the baseline's on the same texts. The value is that of all texts; low and
    high are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled values (resamples
    without tokens left out). No texts give NaNs."""
    return _bootstrap_corpus(nll_sum, n_tokens, baseline_nll, n_boot, seed, alpha, exp=True)


def bootstrap_nll(
    nll_sum: torch.Tensor | np.ndarray | Sequence[float],
    n_tokens: torch.Tensor | np.ndarray | Sequence[float],
    baseline_nll: torch.Tensor | np.ndarray | Sequence[float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """:func:`bootstrap_perplexity` of the mean NLL per token (:func:`mean_nll`): the value or
    its change ΔNLL, with the interval from the same resamples (the same ``seed`` draws the
    same texts)."""
    return _bootstrap_corpus(nll_sum, n_tokens, baseline_nll, n_boot, seed, alpha, exp=False)


def language_ablation_rows(
    intervened: str,
    baseline: Mapping[str, TextNll],
    ablated: Mapping[str, TextNll],
    n_neurons: int,
    control: str = "none",
    seed: int | None = None,
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """The :data:`ABLATION_SCHEMA` rows of one intervention (``intervened``'s set, or a random
    control set of ``n_neurons`` with ``seed``): two per evaluated language of ``ablated``
    (evaluated -> per-text NLL and tokens with the set off), in its order, against the same
    texts' ``baseline`` scores: metric ``nll`` (mean NLL per token, interval
    :func:`bootstrap_nll`'s of ΔNLL), then ``perplexity`` (:func:`bootstrap_perplexity`'s)."""
    _check_control(control, seed)
    rows = []
    for evaluated, (nll, tokens) in ablated.items():
        if evaluated not in baseline:
            raise ValueError(f"no baseline scores for evaluated language {evaluated!r}")
        base_nll, base_tokens = baseline[evaluated]
        if not np.array_equal(_as_numpy(tokens), _as_numpy(base_tokens)):
            raise ValueError(
                f"{evaluated}: the ablated and baseline scores are not of the same texts "
                "(their token counts differ)"
            )
        for metric, statistic, interval in (
            ("nll", mean_nll, bootstrap_nll),
            ("perplexity", perplexity, bootstrap_perplexity),
        ):
            value = statistic(nll, tokens)
            reference = statistic(base_nll, base_tokens)
            _, low, high = interval(
                nll, tokens, base_nll, n_boot=n_boot, seed=boot_seed, alpha=alpha
            )
            rows.append(
                {
                    "intervened": intervened,
                    "evaluated": evaluated,
                    "metric": metric,
                    "value": value,
                    "baseline": reference,
                    "delta": value - reference,
                    "control": control,
                    "seed": seed,
                    "ci_low": low,
                    "ci_high": high,
                    "n_neurons": int(n_neurons),
                    "n_texts": len(_as_numpy(tokens)),
                }
            )
    return pl.DataFrame(rows, schema=ABLATION_SCHEMA, orient="row")


def ablation_matrix(
    model: nn.Module,
    tokenizer,
    sets: Mapping[str, NeuronSet],
    texts: Mapping[str, Sequence[str]],
    seeds: Sequence[int],
    device: torch.device,
    mode: str = "zero",
    factor: float = 0.0,
    means: Mapping[int, torch.Tensor] | None = None,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    desc: str = "ablation",
    controls: Controls | None = None,
) -> pl.DataFrame:
    """Perplexity of every language's ``texts`` with each language's neuron set off, and with
    random control sets per seed (:func:`intervention_matrix`).

    Each language is scored once without intervention (the baseline of all its rows). A
    language of ``sets`` with no neurons is logged and skipped. Rows follow
    :data:`ABLATION_SCHEMA`, ordered by intervened language (``sets``' order), condition
    (the set, then the seeds in order) and evaluated language (``texts``' order)."""
    pad = pad_token_id(tokenizer)
    encoded = {lang: encode(tokenizer, list(lang_texts)) for lang, lang_texts in texts.items()}
    n_active = sum(1 for s in sets.values() if set_size(s) > 0)
    n_jobs = len(encoded) * (1 + n_active * (1 + len(seeds)))

    with tqdm(total=n_jobs, desc=desc, unit="job", mininterval=5.0) as bar:

        def score_all() -> dict[str, TextNll]:
            out = {}
            for lang, enc in encoded.items():
                out[lang] = encoded_nll(model, enc, pad, device, batch_tokens, max_batch_size)
                bar.update(1)
            return out

        def rows(intervened, baseline, scored, n_neurons, control, seed) -> pl.DataFrame:
            return language_ablation_rows(
                intervened, baseline, scored, n_neurons, control, seed,
                n_boot=n_boot, boot_seed=boot_seed, alpha=alpha,
            )  # fmt: skip

        return intervention_matrix(
            model,
            sets,
            score_all,
            rows,
            seeds,
            mode,
            factor,
            means,
            desc,
            progress=bar,
            controls=controls,
        )


def summarize_ablation(frame: pl.DataFrame) -> pl.DataFrame:
    """Per intervened language and control: the mean change on the language itself
    (``diagonal``; null when it was not evaluated) and on the other languages (``off_diagonal``;
    random controls: averaged over seeds), the seeds and the neurons. Of a perplexity table
    only its ``nll`` rows count (mean ΔNLL: raw perplexity changes, averaged, let one exponent
    drown the rest)."""
    if "metric" in frame.columns and (frame["metric"] == "nll").any():
        frame = frame.filter(pl.col("metric") == "nll")
    return (
        frame.with_columns(own=pl.col("evaluated") == pl.col("intervened"))
        .group_by("intervened", "control", maintain_order=True)
        .agg(
            diagonal=pl.col("delta").filter(pl.col("own")).mean(),
            off_diagonal=pl.col("delta").filter(~pl.col("own")).mean(),
            n_seeds=pl.col("seed").drop_nulls().n_unique(),
            n_neurons=pl.col("n_neurons").first(),
        )
    )
