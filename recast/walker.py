"""Walk a teacher into a chain of classified blocks.

Pieces from :mod:`recast.graph` are grouped around *anchors* (a conv, a
linear, or a multi-branch region): BN/activation pieces after a conv belong
to it (post-activation), a BN after a residual or dense region starts the
next block (pre-activation), and pools after a conv are kept as the block's
*tail*, which a recast keeps as it is. Each block records what a planner and
a report need: kind, widths, stride, shapes, the modules it owns.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from recast.classify import RESIDUAL_KINDS, main_branch_convs, piece_kind
from recast.graph import Piece, TracedModel, extract, trace

RECASTABLE = ("conv", "basic", "bottleneck", "dense")
FIXED = ("stem", "transition", "head", "other")
REGION_KINDS = RESIDUAL_KINDS + ("dense", "inception", "shuffle")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # exact types only
_LIGHT = ("norm", "act", "pool", "global_pool", "dropout", "reshape", "identity",
          "mul", "add", "other", "get_attr", "cat")


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
        return self.kind in RECASTABLE

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

    def as_module(self) -> nn.Sequential:
        return nn.Sequential(*(b.module for b in self.blocks))

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for block in self.blocks:
            counts[block.kind] = counts.get(block.kind, 0) + 1
        return counts

    def max_error(self, model: nn.Module, batch: int = 2, seed: int = 0) -> float:
        """Largest |teacher - chain| on a random batch: 0 means an exact cut."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn((batch, *self.input_shape[1:]), generator=generator)
        with torch.no_grad():
            expected = model(x)
            got = self.as_module()(x)
        return float((expected - got).abs().max())


@dataclass
class _Group:
    core: list[Piece] = field(default_factory=list)
    tail: list[Piece] = field(default_factory=list)
    anchor: str | None = None
    anchor_pieces: list[Piece] = field(default_factory=list)


def walk(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> BlockChain:
    """Trace ``model`` (in eval mode) and cut it into a chain of blocks."""
    import time

    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        traced = trace(model, torch.randn(input_shape))
    finally:
        model.train(was_training)
    modules = traced.modules
    kinds = {id(p): piece_kind(p, traced.graph, modules) for p in traced.pieces}
    root_modules = dict(model.named_modules())
    groups = _merge_owned(_group(traced.pieces, kinds, model), root_modules)
    labels = _label(groups)
    blocks = [
        _block(i, group, label, traced, modules) for i, (group, label) in
        enumerate(zip(groups, labels))
    ]
    _unique_names(blocks)
    chain = BlockChain(blocks, tuple(input_shape), type(model).__name__)
    chain.walk_seconds = time.perf_counter() - start
    return chain


def _group(pieces: list[Piece], kinds: dict[int, str], root: nn.Module) -> list[_Group]:
    groups: list[_Group] = []
    cur = _Group()
    pending: list[Piece] = []
    owner = ""
    for piece in pieces:
        kind = kinds[id(piece)]
        if kind in _LIGHT:
            paths = [str(n.target) for n in piece.nodes if n.op == "call_module"]
            owned = bool(owner) and bool(paths) and all(
                p.startswith(owner + ".") for p in paths)
            if owned and not pending and not cur.tail and cur.anchor in REGION_KINDS:
                cur.core.append(piece)  # the region's own module says it is its
            elif pending or cur.anchor is None:
                pending.append(piece)
            elif kind in ("global_pool", "reshape"):
                pending.append(piece)
            elif cur.anchor == "conv":
                has_norm = any(kinds[id(p)] == "norm" for p in cur.core[1:])
                if kind in ("norm", "act") and not cur.tail and not (kind == "norm" and has_norm):
                    cur.core.append(piece)
                elif kind in ("pool", "dropout", "identity"):
                    cur.tail.append(piece)
                else:
                    pending.append(piece)
            elif cur.anchor == "linear":
                cur.core.append(piece)
            elif kind in ("act", "identity", "dropout") and not cur.tail:
                cur.core.append(piece)
            else:
                pending.append(piece)
            continue
        same_dense = kind == "dense" and cur.anchor == "dense" and not pending
        if cur.anchor is None:
            cur.core += pending + [piece]
        elif same_dense and not cur.tail:
            cur.core.append(piece)
        elif kind == "linear" and cur.anchor == "linear":
            cur.core += cur.tail + pending + [piece]
            cur.tail = []
        else:
            groups.append(cur)
            cur = _Group(core=pending + [piece])
        if cur.anchor is None:
            cur.anchor = "dense" if kind == "dense" else kind
        cur.anchor_pieces.append(piece)
        owner = _owner(_anchor_paths(cur), root) if cur.anchor in REGION_KINDS else ""
        pending = []
    if pending:
        if cur.anchor in (None, "linear"):
            cur.core += cur.tail + pending
            cur.tail = []
        else:
            cur.tail += pending
    groups.append(cur)
    return [g for g in groups if g.core]


def _anchor_paths(group: _Group) -> list[str]:
    return [str(n.target) for p in group.anchor_pieces for n in p.nodes
            if n.op == "call_module"]


def _merge_owned(groups: list[_Group], modules: dict[str, nn.Module]) -> list[_Group]:
    """Merge consecutive groups that one user module owns, e.g. MobileNet's
    inverted residuals without a shortcut (1x1, depthwise, 1x1 convs)."""
    merged: list[_Group] = []
    i = 0
    while i < len(groups):
        found = _owned_run(groups, i, modules)
        if found is None:
            merged.append(groups[i])
            i += 1
            continue
        end, kind = found
        run = groups[i:end + 1]
        core = [p for g in run[:-1] for p in g.core + g.tail] + run[-1].core
        anchors = [p for g in run for p in g.anchor_pieces]
        merged.append(_Group(core, run[-1].tail, kind, anchors))
        i = end + 1
    return merged


def _owned_run(
    groups: list[_Group], start: int, modules: dict[str, nn.Module]
) -> tuple[int, str] | None:
    paths = _anchor_paths(groups[start])
    if groups[start].anchor not in ("conv",) + REGION_KINDS or not paths:
        return None
    parts = paths[0].split(".")
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:depth]) + "."
        if type(modules.get(prefix[:-1])) in _CONTAINERS:
            continue
        inside = [all(p.startswith(prefix) for p in _anchor_paths(g)) and
                  bool(_anchor_paths(g)) for g in groups]
        end = start
        while end + 1 < len(groups) and inside[end + 1]:
            end += 1
        outside = [p for k, g in enumerate(groups) if not start <= k <= end
                   for p in _anchor_paths(g)]
        if end == start or any(p.startswith(prefix) for p in outside):
            continue
        kind = _run_kind(groups[start:end + 1], modules)
        if kind:
            return end, kind
    return None


def _run_kind(run: list[_Group], modules: dict[str, nn.Module]) -> str | None:
    regions = [g.anchor for g in run if g.anchor in REGION_KINDS]
    if any(g.anchor not in ("conv",) + REGION_KINDS for g in run) or len(regions) > 1:
        return None
    if regions:
        return regions[0]
    shape = []
    for path in (p for g in run for p in _anchor_paths(g)):
        conv = modules.get(path)
        if isinstance(conv, nn.Conv2d):
            depthwise = conv.groups > 1 and conv.groups == conv.in_channels
            shape.append("dw" if depthwise else conv.kernel_size[0])
    if shape in ([1, "dw", 1], ["dw", 1]):
        return "inverted_residual"
    if shape == [3, 1]:
        return "fused_inverted_residual"
    return None


def _label(groups: list[_Group]) -> list[str]:
    labels = []
    for g in groups:
        if g.anchor == "linear":
            labels.append("head")
        elif g.anchor in ("conv",) or g.anchor in REGION_KINDS:
            labels.append(str(g.anchor))
        else:
            labels.append("other")
    regions = [i for i, k in enumerate(labels) if k in REGION_KINDS]
    if regions:
        for i, kind in enumerate(labels):
            if kind != "conv":
                continue
            pools = any(p.role == "pool" for p in groups[i].tail + groups[i].core)
            if i < regions[0]:
                labels[i] = "stem"
            elif pools or _strided(groups[i]):
                labels[i] = "transition"
    last = max((i for i, k in enumerate(labels) if k != "head"), default=-1)
    labels = ["transition" if k == "head" and i < last else k
              for i, k in enumerate(labels)]
    if "head" not in labels and labels and labels[-1] in ("conv", "other"):
        labels[-1] = "head"
    return labels


def _strided(group: _Group) -> bool:
    first, last = _shape(group.core[0].input), _shape(group.core[-1].output)
    return len(first) == 4 and len(last) == 4 and last[-1] < first[-1]


def _block(
    index: int, group: _Group, kind: str, traced: TracedModel, modules: dict[str, nn.Module]
) -> Block:
    pieces = group.core + group.tail
    module = extract(traced, pieces, f"Block{index}")
    tail = extract(traced, group.tail, f"Tail{index}") if group.tail else None
    in_shape = _shape(group.core[0].input)
    out_shape = _shape(pieces[-1].output)
    core_out = _shape(group.core[-1].output)
    stride = 1
    if len(in_shape) == 4 and len(core_out) == 4 and core_out[-1]:
        stride = max(1, in_shape[-1] // core_out[-1])
    paths = [str(n.target) for p in pieces for n in p.nodes if n.op == "call_module"]
    anchor_paths = _anchor_paths(group)
    block = Block(
        index=index, name=_block_name(group, anchor_paths, traced) or f"block{index}",
        kind=kind, module=module, tail=tail, module_paths=paths,
        in_shape=in_shape, out_shape=out_shape, stride=stride,
    )
    if kind == "bottleneck":
        convs = main_branch_convs(group.anchor_pieces[0], traced.graph)
        block.mid_channels = _shape(convs[0])[1]
    if kind == "dense":
        convs = [n for p in group.anchor_pieces for n in p.nodes if p.roles[n] == "conv"]
        block.n_layers = max(1, len(convs) // 2)
        block.growth = (block.out_channels - block.in_channels) // block.n_layers
    block.params = sum(p.numel() for p in module.parameters())
    return block


def _block_name(group: _Group, anchor_paths: list[str], traced: TracedModel) -> str:
    """The user's own module that holds the block, else the anchor's path."""
    core = [str(n.target) for p in group.core for n in p.nodes if n.op == "call_module"]
    return _owner(core, traced.root) or _owner(anchor_paths, traced.root)


def _owner(paths: list[str], root: nn.Module) -> str:
    """Deepest non-container module holding all ``paths`` ('' if the root)."""
    prefix = _common_prefix(paths) if len(paths) > 1 else ".".join(
        paths[0].split(".")[:-1]) if paths else ""
    while prefix and type(root.get_submodule(prefix)) in _CONTAINERS:
        prefix = prefix.rpartition(".")[0]
    if not prefix and len(paths) == 1:
        return paths[0]
    return prefix


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else ()


def _common_prefix(paths: list[str]) -> str:
    if not paths:
        return ""
    parts = [p.split(".") for p in paths]
    prefix = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    if len(paths) == 1:
        return paths[0]
    return ".".join(prefix)


def _unique_names(blocks: list[Block]) -> None:
    seen: dict[str, int] = {}
    for block in blocks:
        seen[block.name] = seen.get(block.name, 0) + 1
    for block in blocks:
        if seen[block.name] > 1 or not block.name:
            block.name = f"{block.name or 'block'}#{block.index}"
