"""Measurements on networks: gradient flow, layer responses (and, later, lesions, paths, landscapes).

Analysis uses models but never the trainer.
"""
