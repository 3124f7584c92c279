"""Neuron and direction finding: LAPE, overlap, HSIC bridges, value, task and relation
neurons, refusal directions and the logit lens."""
