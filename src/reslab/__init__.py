"""reslab: deep residual learning, built and measured.

Networks (plain, residual, pre-activation, DenseNet, GoogLeNet and the classic baselines), the
optimizers and schedules that train them, and the experiments that test what the papers claim.
"""

__version__ = "0.1.0"
