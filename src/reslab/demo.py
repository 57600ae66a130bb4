"""What ``reslab demo`` runs: the degradation experiment in small, on the embedded CIFAR-10 sample.

Plain and residual twins, shallow and deep, with one recipe and seed; then the gradient-flow and
layer-response analyses and the report. About three minutes on a 2-core CPU, no download.
"""

DEMO_MODELS = ["plain20", "plain56", "resnet20", "resnet56"]

DEMO_RUN = {
    "name": "demo",
    "data": {"dataset": "sample", "val_size": 500, "batch_size": 128},
    "model": {"name": "resnet20"},
    "optim": {"name": "momentum", "lr": 0.1, "weight_decay": 1e-4},
    # A one-epoch linear warm-up from 0.01: without it lr 0.1 throws resnet56 off in its first steps
    # (the loss jumps from 2.9 to 8) and 210 steps are too few to recover; He et al. warm up their
    # deepest networks the same way.
    "schedule": {"name": "cosine", "warmup_steps": 35, "warmup_lr": 0.01},
    "train": {"epochs": 6, "log_every": 7},
}
