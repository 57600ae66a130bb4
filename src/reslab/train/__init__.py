"""Training engine: a Trainer with fit/evaluate, callbacks, atomic checkpoints."""

from reslab.train.callbacks import (Callback, Checkpointer, EarlyStopping, GradientRecorder, MetricsLogger, ProgressBar,
                                    TensorBoardLogger)
from reslab.train.checkpoint import load_checkpoint, save_checkpoint
from reslab.train.trainer import Trainer, TrainingDiverged, classification_loss

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "GradientRecorder", "MetricsLogger", "ProgressBar", "TensorBoardLogger",
           "Trainer", "TrainingDiverged", "classification_loss", "load_checkpoint", "save_checkpoint"]
