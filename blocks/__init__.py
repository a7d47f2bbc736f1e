"""The vocabulary of block kinds a teacher's blocks can be recast into.

Every kind is built the same way, from input width, output width, stride and
(where the kind has one) a mid width or growth rate, so the planner can ask
for any kind by name: ``build_block("basic", 64, 128, stride=2)``. Each kind's
file registers it (:mod:`blocks.registry`); importing this package registers
the built-in kinds.
"""

from blocks.registry import (BLOCK_KINDS, BlockKind, BlockSpec, SourceBlock, block_kind,
                             build_block, register_kind)
from blocks.conv import ConvBlock  # noqa: E402  (registers "conv")
from blocks.basic import BasicBlock  # noqa: E402  (registers "basic")
from blocks.bottleneck import Bottleneck  # noqa: E402
from blocks.dense import DenseBlock, DenseLayer  # noqa: E402
from blocks.dwconv import DWConvBlock  # noqa: E402  (registers "dwconv")
from blocks.mbconv import MBConv  # noqa: E402  (registers "mbconv")

__all__ = [
    "BLOCK_KINDS", "BasicBlock", "BlockKind", "BlockSpec", "Bottleneck", "ConvBlock",
    "DWConvBlock", "DenseBlock", "DenseLayer", "MBConv", "SourceBlock", "block_kind",
    "build_block", "register_kind",
]
