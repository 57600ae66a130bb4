"""Measurements on networks: gradient flow, layer responses, lesions, paths, loss landscapes, and the
verdicts that word them. Pure functions of a model and data: analysis uses models but never the trainer.
"""
