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
    "schedule": {"name": "cosine"},
    "train": {"epochs": 6, "log_every": 7},
}
