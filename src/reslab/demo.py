"""What ``reslab demo`` runs: everything on the embedded CIFAR-10 sample, no download."""

DEMO_RUN = {
    "name": "demo",
    "data": {"dataset": "sample", "val_size": 500, "batch_size": 128},
    "model": {"name": "resnet20"},
    "optim": {"name": "momentum", "lr": 0.2, "weight_decay": 5e-4},
    "schedule": {"name": "onecycle", "pct_start": 0.25},
    "train": {"epochs": 20, "label_smoothing": 0.1},
}
