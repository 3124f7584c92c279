"""Neuron and direction finding: LAPE, overlap, HSIC bridges, value, task and relation
neurons (top-k selection), refusal directions and the logit lens (tokens' writing systems)."""
