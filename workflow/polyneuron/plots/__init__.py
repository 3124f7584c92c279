"""Figures: every plot the workflow draws, one PDF per figure."""
