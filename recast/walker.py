"""Walk a teacher into a chain of classified blocks.

:mod:`recast.graph` traces and cuts the teacher into pieces,
:mod:`recast.grouping` groups them into blocks; this module turns each group
into a :class:`Block` that records what a planner and a report need: kind,
widths, stride, shapes, the modules it owns, and a module that runs it alone.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from blocks.weights import is_depthwise
from recast.classify import main_branch_convs, piece_kind
from recast.graph import TracedModel, extract, node_shape, trace
from recast.grouping import Group, anchor_paths, group_pieces, label_groups, owner_path
from recast.ops import target_name

RECASTABLE = ("conv", "basic", "bottleneck", "dense")
# other blocks of feature maps, one map in and one out: sources too, though no
# kind of their own rebuilds them (rebuild.rebuild_spec stands in for one). A target
# only needs the block's input width, stride and output width, not its insides.
MAP_BLOCKS = ("inverted_residual", "fused_inverted_residual", "convnext", "inception",
              "shuffle", "residual")


@dataclass
class Block:
    """One block of the chain; ``module`` runs it alone on the block input."""

    index: int
    name: str
    kind: str
    module: fx.GraphModule
    tail: fx.GraphModule | None
    module_paths: list[str]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: int
    mid_channels: int | None = None
    growth: int | None = None
    n_layers: int | None = None
    params: int = 0
    macs: int = 0
    mults: int = 0

    @property
    def in_channels(self) -> int:
        return _channels(self.in_shape)

    @property
    def out_channels(self) -> int:
        return _channels(self.out_shape)

    @property
    def recastable(self) -> bool:
        return self.kind in RECASTABLE or (
            self.kind in MAP_BLOCKS and len(self.in_shape) == len(self.out_shape) == 4)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "kind": self.kind,
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "stride": self.stride, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "mid_channels": self.mid_channels,
            "growth": self.growth, "n_layers": self.n_layers,
            "params": self.params, "macs": self.macs, "mults": self.mults,
            "modules": self.module_paths,
        }


def _channels(shape: tuple[int, ...]) -> int:
    """Channels of an NCHW map; features of an (N, tokens, features) sequence."""
    if len(shape) == 4:
        return shape[1]
    return shape[-1] if len(shape) > 1 else 0


@dataclass
class BlockChain:
    """A teacher cut into blocks that, run in order, reproduce its output."""

    blocks: list[Block]
    input_shape: tuple[int, ...]
    model_name: str
    walk_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. modules kept whole as leaves

    def as_module(self) -> nn.Sequential:
        return nn.Sequential(*(b.module for b in self.blocks))

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for block in self.blocks:
            counts[block.kind] = counts.get(block.kind, 0) + 1
        return counts


def walk(
    model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32),
    leaf_modules: Sequence[str] = (), leaf_functions: Sequence[Callable[..., Any]] = (),
) -> BlockChain:
    """Trace ``model`` (in eval mode) and cut it into a chain of blocks.

    ``leaf_modules`` (class names or module paths, e.g. ``"SamePadConv"`` or
    ``"features.3"``) and ``leaf_functions`` are kept whole, never looked into:
    the way to walk code torch.fx cannot trace.
    """
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        traced = trace(model, torch.randn(input_shape), leaf_modules, leaf_functions)
    finally:
        model.train(was_training)
    modules = traced.modules
    kinds = {id(p): piece_kind(p, traced.graph, modules) for p in traced.pieces}
    groups = group_pieces(traced.pieces, kinds, model)
    labels = label_groups(groups)
    blocks = [
        _block(i, group, label, traced, modules) for i, (group, label) in
        enumerate(zip(groups, labels))
    ]
    _unique_names(blocks)
    chain = BlockChain(blocks, tuple(input_shape), type(model).__name__,
                       notes=list(traced.notes))
    chain.walk_seconds = time.perf_counter() - start
    return chain


def _block(
    index: int, group: Group, kind: str, traced: TracedModel, modules: dict[str, nn.Module]
) -> Block:
    pieces = group.core + group.tail
    module = extract(traced, pieces, f"Block{index}")
    tail = extract(traced, group.tail, f"Tail{index}") if group.tail else None
    in_shape = node_shape(group.core[0].input)
    out_shape = node_shape(pieces[-1].output)
    core_out = node_shape(group.core[-1].output)
    stride = 1  # a head's global pool is no stride
    if kind != "head" and len(in_shape) == 4 and len(core_out) == 4 and core_out[-1]:
        stride = max(1, in_shape[-1] // core_out[-1])
    paths = [str(n.target) for p in pieces for n in p.nodes if n.op == "call_module"]
    block = Block(
        index=index, name=_block_name(group, anchor_paths(group), traced) or f"block{index}",
        kind=kind, module=module, tail=tail, module_paths=paths,
        in_shape=in_shape, out_shape=out_shape, stride=stride,
    )
    if kind == "bottleneck":
        convs = main_branch_convs(group.anchor_pieces[0], traced.graph)
        block.mid_channels = node_shape(convs[0])[1]
    if kind == "inverted_residual":  # the expanded width: what its depthwise conv sees
        block.mid_channels = _depthwise_width(group, traced.modules)
    if kind == "dense":
        convs = [n for p in group.anchor_pieces for n in p.nodes if p.roles[n] == "conv"]
        block.n_layers = max(1, len(convs) // 2)
        block.growth = (block.out_channels - block.in_channels) // block.n_layers
    block.params = sum(p.numel() for p in module.parameters())
    return block


def _depthwise_width(group: Group, modules: dict[str, nn.Module]) -> int | None:
    """The widest map a depthwise conv makes: the widest conv (MobileNetV4's extra
    depthwise conv before the expansion sees only the input width), and all of a
    mixed conv's chunks together (MixNet: depthwise convs of several kernels, cat)."""
    widths = []
    for node in (n for p in group.core for n in p.nodes if n.op == "call_module"):
        conv = modules.get(str(node.target))
        if isinstance(conv, nn.Conv2d) and is_depthwise(conv):
            cats = [u for u in node.users if target_name(u) in ("cat", "concat")]
            shape = node_shape(cats[0]) if len(cats) == 1 else node_shape(node)
            widths.append(shape[1] if len(shape) == 4 else conv.out_channels)
    return max(widths, default=None)


def _block_name(group: Group, anchors: list[str], traced: TracedModel) -> str:
    """The user's own module that holds the block, else the anchor's path."""
    core = [str(n.target) for p in group.core for n in p.nodes if n.op == "call_module"]
    return owner_path(core, traced.root) or owner_path(anchors, traced.root)


def _unique_names(blocks: list[Block]) -> None:
    seen: dict[str, int] = {}
    for block in blocks:
        seen[block.name] = seen.get(block.name, 0) + 1
    for block in blocks:
        if seen[block.name] > 1 or not block.name:
            block.name = f"{block.name or 'block'}#{block.index}"
