"""Write a model as a safetensors HF folder under resources/models/{model}/."""

import hashlib
import json
from pathlib import Path

from polyneuron.io import write_text
from polyneuron.logs import script_log
from polyneuron.model.load import ModelSpec, model_info, prepare_model

with script_log(snakemake.log[0]) as log:
    spec = ModelSpec(
        name=snakemake.wildcards.model,
        source=snakemake.params.source,
        trust_remote_code=snakemake.params.trust_remote_code,
        revision=snakemake.params.revision,
        adapter=snakemake.params.adapter[0] if snakemake.params.adapter else None,
    )
    prepare_model(spec, snakemake.output.folder)
    info = model_info(snakemake.output.folder)
    if spec.adapter:
        digest = hashlib.sha256(Path(spec.adapter).read_bytes()).hexdigest()
        info["adapter"] = {"path": spec.adapter, "sha256": digest}
        log.info("merged the LoRA adapter %s (sha256 %s)", spec.adapter, digest)
    log.info("prepared %s: %s", spec.name, info)
    write_text(json.dumps(info, indent=2) + "\n", snakemake.output.info)
