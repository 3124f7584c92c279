"""Interventions and their evaluation: neuron sets switched off beside random controls,
bootstrap intervals, the intervention matrix and one module per evaluation."""
