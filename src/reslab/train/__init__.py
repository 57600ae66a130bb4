"""Training engine: a Trainer with fit/evaluate and its callbacks (metrics, TensorBoard, checkpoints,
early stopping, progress). It takes any ``nn.Module``: nothing here imports model code."""

from reslab.train.board import TensorBoardLogger
from reslab.train.callbacks import Callback, Checkpointer, EarlyStopping, GradientRecorder, MetricsLogger, ProgressBar
from reslab.train.trainer import Trainer, TrainingDiverged, classification_loss

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "GradientRecorder", "MetricsLogger", "ProgressBar",
           "TensorBoardLogger", "Trainer", "TrainingDiverged", "classification_loss"]
