"""The least model work a job must do, timed in the job's own process: its *work ratio*.

A model job's minimum is the plain passes over its inputs that no implementation can avoid: a
plain ``model(**batch)`` forward over every batch it scores, once per intervention and control
— with the logits it reads (every position's for a perplexity, the last position's for a
next-token score, none for activation statistics, every layer's last-position logits for a
logit lens) — or a greedy ``model.generate`` where it generates, or a plain forward and
backward where it needs gradients. With
``POLYNEURON_WORK_RATIO=1`` in the environment (``benchmarks/workflow.py`` sets it),
:func:`start` (called by :func:`polyneuron.model.load.load_job_model`) opens a :class:`Meter`
on the job's model; the library marks what it needs with :func:`need`: every batch the decoder
body sees inside the scope is recorded with how many times the job must run it (``times``: the
plain run plus each intervention and control). When the job's log closes
(:func:`polyneuron.logs.script_log`), :func:`finish` replays each recorded batch once through
the plain model, times it, and logs one line::

    work: job 52.3 s, minimum 30.1 s (4 batches, 2,310 tokens x 17 passes), ratio 1.74;
    replay 1.9 s

``job`` is the process's age before the replay (imports and model loading included), so the
ratio is what a user waits for against what the model must compute. Without the variable
nothing is recorded and :func:`need` costs nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from polyneuron.model.adapters import activation_modules, decoder_body, final_norm, unembed
from polyneuron.model.hooks import frozen

ENV = "POLYNEURON_WORK_RATIO"
LINE = (
    "work: job {job:.1f} s, minimum {minimum:.1f} s ({what}), ratio {ratio:.2f}; "
    "replay {replay:.1f} s"
)


LOGITS = ("all", "last", "none", "layers", "grad")


@dataclass
class Needed:
    """One recorded batch: its ids and mask (on the CPU), how many times the job must run it,
    the greedy tokens to generate after it (0: a forward) and which logits a forward needs
    (:data:`LOGITS`)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    times: int
    new_tokens: int = 0
    logits: str = "all"
    #: ``logits="grad"``: the ``[batch, seq]`` positions whose logits the loss reads
    targets: torch.Tensor | None = None


@dataclass
class Meter:
    """The recorded minimum of one job's ``model``."""

    model: nn.Module
    started: float = field(default_factory=time.time)
    pad_token_id: int | None = None
    needed: list[Needed] = field(default_factory=list)

    def seconds(self) -> tuple[float, float]:
        """Replay every recorded batch once, after a one-row warm-up: (minimum s, replay s)."""
        began = time.perf_counter()
        minimum = 0.0
        if self.needed:
            first = self.needed[0]
            targets = None if first.targets is None else first.targets[:1]
            warm_up = Needed(first.input_ids[:1], first.attention_mask[:1], 0, first.new_tokens,
                             first.logits, targets)  # fmt: skip
            for item in [warm_up, *self.needed]:
                start = time.perf_counter()
                self._run(item)
                minimum += (time.perf_counter() - start) * item.times
        return minimum, time.perf_counter() - began

    def _run(self, item: Needed) -> None:
        device = next(self.model.parameters()).device
        ids, mask = item.input_ids.to(device), item.attention_mask.to(device)
        if item.logits == "grad":
            assert item.targets is not None, "a gradient's minimum needs its target positions"
            self._gradient(ids, mask, item.targets.to(device))
            return
        with torch.inference_mode():
            if item.new_tokens:
                self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=item.new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=self.pad_token_id,
                )  # fmt: skip
            elif item.logits == "none":
                decoder_body(self.model)(input_ids=ids, attention_mask=mask, use_cache=False)
            elif item.logits == "layers":
                self._lens(ids, mask)
            elif item.logits == "last":
                self.model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
            else:
                self.model(input_ids=ids, attention_mask=mask, use_cache=False)

    def _lens(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """A plain logit lens at each row's last real token: the forward with every layer's
        output kept, each one through the model's final norm and unembedding, softmax."""
        out = self.model(input_ids=ids, attention_mask=mask, use_cache=False,
                         output_hidden_states=True, logits_to_keep=1)  # fmt: skip
        rows, last = torch.arange(len(ids), device=ids.device), mask.sum(1) - 1
        norm = final_norm(self.model)
        for hidden in out.hidden_states[1:-1]:  # the last one is the model's own logits
            torch.log_softmax(unembed(self.model, norm(hidden[rows, last])).float(), -1)

    def _gradient(self, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> None:
        """A plain forward and backward: the loss over the ``targets`` positions' logits,
        differentiated down to the first layer's activation (every neuron's gradient lies on
        that path), no weight gradients."""
        first = activation_modules(self.model)[0]
        kept: list[torch.Tensor] = []

        def keep(_module, _inputs, output):
            kept.append(output.requires_grad_())

        handle = first.register_forward_hook(keep)
        try:
            with frozen(self.model), torch.enable_grad():
                hidden = decoder_body(self.model)(input_ids=ids, attention_mask=mask,
                                                  use_cache=False)[0]  # fmt: skip
                logits = unembed(self.model, hidden[targets]).float()
                torch.autograd.grad(torch.logsumexp(logits, -1).sum(), kept)
        finally:
            handle.remove()

    def describe(self) -> str:
        """The recorded work in words: batches, tokens, passes."""
        tokens = sum(int(n.attention_mask.sum()) for n in self.needed)
        passes = sum(int(n.attention_mask.sum()) * n.times for n in self.needed)
        generated = sum(n.new_tokens * len(n.input_ids) * n.times for n in self.needed)
        text = f"{len(self.needed)} batches, {tokens:,} tokens, {passes:,} token passes"
        return text + (f", {generated:,} generated tokens" if generated else "")


_ACTIVE: Meter | None = None
_SCOPE: list[object] = []  # one token per open need(); the innermost records


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def start(model: nn.Module, pad_token_id: int | None = None) -> None:
    """Open the job's meter on ``model`` when :data:`ENV` is set (``pad_token_id`` pads the
    replayed generations)."""
    global _ACTIVE
    if enabled():
        _ACTIVE = Meter(model, started=_process_start(), pad_token_id=pad_token_id)


def _process_start() -> float:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil missing: count from the model's load
        return time.time()


@contextmanager
def need(times: int, new_tokens: int = 0, logits: str = "all") -> Iterator[None]:
    """Record each batch the decoder body sees in this scope as needed ``times`` times, with
    ``logits`` (:data:`LOGITS`: every position's, the last one's, none, or every layer's output
    at the last real token through the final norm and unembedding, as a plain logit lens
    computes them from ``output_hidden_states``) or followed by
    ``new_tokens`` greedy tokens (a generation). Generation steps after a prompt's first are
    not recorded (the replay generates them). Nested scopes: the innermost counts."""
    if logits not in LOGITS:
        raise ValueError(f"logits must be one of {LOGITS}, not {logits!r}")
    meter = _ACTIVE
    if meter is None or times <= 0:
        yield
        return

    token = object()

    def pre(_module, args, kwargs):
        if _SCOPE[-1] is not token:
            return
        cache = kwargs.get("past_key_values")
        if cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length():
            return  # a generation step after the prompt's
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        add(ids, kwargs.get("attention_mask"), times, new_tokens, logits)

    _SCOPE.append(token)
    handle = decoder_body(meter.model).register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        _SCOPE.pop()


def add(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    times: int,
    new_tokens: int = 0,
    logits: str = "all",
    targets: torch.Tensor | None = None,
) -> None:
    """Record one batch as needed ``times`` times, as :func:`need` does for each batch the
    decoder body sees: for a job that runs less than a whole plain pass (e.g. only the last
    token again, on a cached prefix) or a gradient (``logits="grad"``, with ``targets``, the
    ``[batch, seq]`` positions whose logits the loss reads), recorded by hand. No meter open:
    nothing."""
    if logits not in LOGITS:
        raise ValueError(f"logits must be one of {LOGITS}, not {logits!r}")
    if (logits == "grad") != (targets is not None):
        raise ValueError('targets go with logits="grad", and only with it')
    meter = _ACTIVE
    if meter is None or times <= 0:
        return
    if attention_mask is None or attention_mask.ndim != 2:
        attention_mask = torch.ones_like(input_ids)
    kept = None if targets is None else targets.detach().cpu()
    ids, mask = input_ids.detach().cpu(), attention_mask.detach().cpu()
    meter.needed.append(Needed(ids, mask, times, new_tokens, logits, kept))


def finish(log: logging.Logger) -> None:
    """Replay the job's minimum and log its line (nothing when no meter is open or nothing
    was recorded)."""
    global _ACTIVE
    meter, _ACTIVE = _ACTIVE, None
    if meter is None or not meter.needed:
        return
    job = time.time() - meter.started
    try:
        minimum, replay = meter.seconds()
    except Exception as err:  # a benchmark's measurement must never fail the job
        log.warning("work: the replay of the job's minimum failed (%s); no work ratio", err)
        return
    ratio = job / minimum if minimum > 0 else float("nan")
    log.info(LINE.format(job=job, minimum=minimum, what=meter.describe(), ratio=ratio,
                         replay=replay))  # fmt: skip
