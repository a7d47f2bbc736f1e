"""The vocabulary of target block kinds a teacher's blocks can be recast into.

Every kind is built the same way, from input width, output width, stride and
(where the kind has one) a mid width or growth rate, so the planner can ask
for any kind by name: ``build_block("basic", 64, 128, stride=2)``.
"""

from blocks.basic import BasicBlock
from blocks.bottleneck import Bottleneck
from blocks.conv import ConvBlock
from blocks.dense import DenseBlock
from blocks.registry import BLOCK_KINDS, BlockSpec, build_block

__all__ = [
    "BLOCK_KINDS",
    "BasicBlock",
    "BlockSpec",
    "Bottleneck",
    "ConvBlock",
    "DenseBlock",
    "build_block",
]
