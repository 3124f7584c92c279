"""The model: loading and preparing it, per-architecture adapters, prompts and batches, the
hooks that collect activation statistics, and the hooks that steer the residual stream."""
