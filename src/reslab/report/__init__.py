"""Plots (pure: results -> figure) and the self-contained HTML report, built from a run's files alone."""
