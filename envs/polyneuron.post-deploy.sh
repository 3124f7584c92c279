#!/usr/bin/env bash
# Snakemake runs this inside the new environment: the packages installed without their
# dependencies (see requirements-nodeps.txt).
set -euo pipefail
pip install --no-deps -r "$(dirname "${BASH_SOURCE[0]}")/../requirements-nodeps.txt"
