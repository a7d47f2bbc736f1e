"""Kind name -> BlockKind: everything recast needs to know about one block kind.

As timm's ``register_model`` does for models, each kind's own file registers
it here: how to build it from a spec, how wide a target of this kind is for a
given source block, how to rebuild it as the temporary "next block" of a
dimension mismatch, and which source kinds it can be warm-started from. A new
target kind is one new file in ``blocks/`` plus its tests.
"""

from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol

from torch import Tensor, fx, nn


class SourceBlock(Protocol):
    """What a kind reads of a teacher block (recast.walker.Block has it all)."""

    kind: str
    name: str
    stride: int
    mid_channels: int | None
    growth: int | None
    n_layers: int | None

    @property
    def in_channels(self) -> int: ...

    @property
    def out_channels(self) -> int: ...


@dataclass(frozen=True)
class BlockSpec:
    """Everything needed to rebuild a target block: JSON-safe by design."""

    kind: str
    in_channels: int
    out_channels: int
    stride: int = 1
    mid_channels: int | None = None
    growth: int | None = None

    def build(self) -> nn.Module:
        return block_kind(self.kind).build(self)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# warm_start(source_kind, teacher_block, target, in_idx, keep_outputs) -> kept output
# channels (teacher indices), or None when this source's shape gives no warm start;
# it is only called for source kinds listed in the kind's warm_sources
WarmStart = Callable[[str, fx.GraphModule, nn.Module, Tensor, bool], Tensor | None]


@dataclass(frozen=True)
class BlockKind:
    """One kind of block, as the planner and the engine use it."""

    name: str
    build: Callable[[BlockSpec], nn.Module]
    # (source block, width ratio, input channels) -> the target's spec
    target_spec: Callable[[SourceBlock, float, int], BlockSpec]
    # (source block of this kind, new input channels) -> a fresh block of the same
    # kind that reads them and gives the source's output: the temporary next block
    rebuild: Callable[[SourceBlock, int], BlockSpec]
    warm_start: WarmStart | None = None
    warm_sources: tuple[str, ...] = ()  # source kinds warm_start can start from
    summary: str = ""


BLOCK_KINDS: dict[str, BlockKind] = {}


def register_kind(kind: BlockKind) -> BlockKind:
    """Make ``kind`` available by name to plans, the engine and the CLI."""
    BLOCK_KINDS[kind.name] = kind
    return kind


def block_kind(name: str) -> BlockKind:
    """The registered kind ``name``; unknown names list the known ones."""
    if name not in BLOCK_KINDS:
        raise ValueError(f"unknown block kind '{name}'; choose one of: {', '.join(BLOCK_KINDS)}")
    return BLOCK_KINDS[name]


def build_block(kind: str, in_channels: int, out_channels: int, stride: int = 1,
                mid_channels: int | None = None, growth: int | None = None) -> nn.Module:
    """Build a block of ``kind`` from its widths and stride."""
    return BlockSpec(kind, in_channels, out_channels, stride, mid_channels, growth).build()


def scaled(channels: int, ratio: float) -> int:
    """A width times a ratio, rounded, never below one channel."""
    return max(1, round(channels * ratio))


def target_width(source: SourceBlock, ratio: float, target: str) -> int:
    """The paper's rule: the source's output width times the ratio, except that a
    bottleneck recast into another kind takes its *mid* width times the ratio."""
    if source.kind == "bottleneck" and target != "bottleneck":
        return scaled(source.mid_channels or source.out_channels // 4, ratio)
    return scaled(source.out_channels, ratio)


def same_widths(kind: str) -> Callable[[SourceBlock, int], BlockSpec]:
    """The usual rebuild rule: the source's output, stride and mid width."""
    def rebuild(source: SourceBlock, in_channels: int) -> BlockSpec:
        return BlockSpec(kind, in_channels, source.out_channels, source.stride,
                         mid_channels=source.mid_channels if kind == "bottleneck" else None)
    return rebuild
