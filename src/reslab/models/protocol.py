"""The block interface that the lesion study, the path analysis and stochastic depth rely on.

A block of a residual network computes H(x) = act(F(x) + shortcut(x)), where act is a ReLU in the
post-activation form (He et al. 2016) and nothing in the pre-activation form. The analyses take the
block apart: they call ``residual`` (F) and ``shortcut`` separately, delete a block by keeping its
shortcut only, and read its survival probability. A block that does not declare these members cannot
be analysed that way, and :func:`shortcut_blocks` says so in one line instead of returning numbers
that mean nothing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from reslab.errors import ConfigError


@runtime_checkable
class ShortcutBlock(Protocol):
    has_shortcut: bool  # False in a plain network: H(x) = act(F(x))
    changes_shape: bool  # the output's shape differs from the input's (stride or width)
    post_activation: bool  # a ReLU after the addition
    downsample: nn.Module | None  # None: the shortcut is the identity
    survival_prob: float  # stochastic depth's p_l (1.0: always kept)

    def residual(self, x: Tensor) -> Tensor: ...  # F(x)

    def shortcut(self, x: Tensor) -> Tensor: ...


class NotAnalysable(ConfigError):
    """The model's blocks do not implement :class:`ShortcutBlock`."""


def shortcut_blocks(model: nn.Module, analysis: str) -> list[ShortcutBlock]:
    """The model's blocks in forward order, each checked against :class:`ShortcutBlock`."""
    blocks = model.blocks() if hasattr(model, "blocks") else None
    if not blocks:
        raise NotAnalysable(f"the {analysis} needs a network of residual or plain blocks; "
                            f"{type(model).__name__} has none")
    for block in blocks:
        if not isinstance(block, ShortcutBlock):
            raise NotAnalysable(f"the {analysis} needs blocks with a residual branch and a shortcut "
                                f"(reslab.models.ShortcutBlock); {type(model).__name__}'s "
                                f"{type(block).__name__} is not one")
    return blocks
