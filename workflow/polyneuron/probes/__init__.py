"""Probe sets: reading dictionaries, parallel text, facts, value stories, tasks and refusal
prompts, and building the probe tables every later stage reads."""
