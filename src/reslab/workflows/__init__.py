"""Making and reading runs: train one run (:mod:`.train`), a sweep of runs (:mod:`.sweep`), restore a
finished run for analysis (:mod:`.restore`), evaluate a checkpoint (:mod:`.evaluate`) and drive the
analyses on runs (:mod:`.analyze`). One code path for each; restoring and evaluating never import the
trainer, so analysis stays trainer-free.
"""
