"""Write a model as a safetensors HF folder under resources/models/{model}/."""

import json

from polyneuron.io import write_text
from polyneuron.logs import script_log
from polyneuron.model.load import ModelSpec, model_info, prepare_model

with script_log(snakemake.log[0]) as log:
    spec = ModelSpec(
        name=snakemake.wildcards.model,
        source=snakemake.params.source,
        trust_remote_code=snakemake.params.trust_remote_code,
        revision=snakemake.params.revision,
    )
    prepare_model(spec, snakemake.output.folder)
    info = model_info(snakemake.output.folder)
    log.info("prepared %s: %s", spec.name, info)
    write_text(json.dumps(info, indent=2) + "\n", snakemake.output.info)
