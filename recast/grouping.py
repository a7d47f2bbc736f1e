"""Group cut pieces into blocks around anchors and label each block.

An *anchor* is a conv, a linear or a multi-branch region. BN/activation
pieces after a conv belong to it (post-activation), a BN after a residual or
dense region starts the next block (pre-activation), and pools after a conv
are kept as the block's *tail*, which a recast keeps as it is. A 1x1 conv on a
globally pooled map is a linear layer in disguise (SqueezeNet-style or timm
"conv head" classifiers), so it anchors the head, not a transition.
"""

from dataclasses import dataclass, field

from torch import nn

from recast.classify import RESIDUAL_KINDS
from recast.graph import Piece, node_shape

REGION_KINDS = RESIDUAL_KINDS + ("dense", "inception", "shuffle")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # exact types only
_LIGHT = ("norm", "act", "pool", "global_pool", "dropout", "reshape", "identity",
          "mul", "add", "other", "get_attr", "cat")


@dataclass
class Group:
    """Consecutive pieces that become one block: ``core`` then ``tail``."""

    core: list[Piece] = field(default_factory=list)
    tail: list[Piece] = field(default_factory=list)
    anchor: str | None = None
    anchor_pieces: list[Piece] = field(default_factory=list)


def group_pieces(pieces: list[Piece], kinds: dict[int, str], root: nn.Module) -> list[Group]:
    """Groups of ``pieces`` (kinds by ``id(piece)``), merged where one module owns them."""
    return _merge_owned(_group(pieces, kinds, root), dict(root.named_modules()))


def _group(pieces: list[Piece], kinds: dict[int, str], root: nn.Module) -> list[Group]:
    groups: list[Group] = []
    cur = Group()
    pending: list[Piece] = []
    owner = ""
    for piece in pieces:
        kind = kinds[id(piece)]
        if kind == "conv" and _on_pooled_map(piece, pending, kinds):
            kind = "linear"
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
            cur = Group(core=pending + [piece])
        if cur.anchor is None:
            cur.anchor = "dense" if kind == "dense" else kind
        cur.anchor_pieces.append(piece)
        owner = owner_path(anchor_paths(cur), root) if cur.anchor in REGION_KINDS else ""
        pending = []
    if pending:
        if cur.anchor in (None, "linear"):
            cur.core += cur.tail + pending
            cur.tail = []
        else:
            cur.tail += pending
    groups.append(cur)
    return [g for g in groups if g.core]


def _on_pooled_map(piece: Piece, pending: list[Piece], kinds: dict[int, str]) -> bool:
    """A conv on the 1x1 map a global pool just made acts as a linear layer."""
    pooled = any(kinds[id(p)] == "global_pool" for p in pending)
    return pooled and node_shape(piece.input)[2:] in ((1, 1), (1,))


def anchor_paths(group: Group) -> list[str]:
    """Module paths called by the group's anchor pieces."""
    return [str(n.target) for p in group.anchor_pieces for n in p.nodes
            if n.op == "call_module"]


def _merge_owned(groups: list[Group], modules: dict[str, nn.Module]) -> list[Group]:
    """Merge consecutive groups that one user module owns, e.g. MobileNet's
    inverted residuals without a shortcut (1x1, depthwise, 1x1 convs)."""
    merged: list[Group] = []
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
        merged.append(Group(core, run[-1].tail, kind, anchors))
        i = end + 1
    return merged


def _owned_run(
    groups: list[Group], start: int, modules: dict[str, nn.Module]
) -> tuple[int, str] | None:
    paths = anchor_paths(groups[start])
    if groups[start].anchor not in ("conv",) + REGION_KINDS or not paths:
        return None
    parts = paths[0].split(".")
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:depth]) + "."
        if type(modules.get(prefix[:-1])) in _CONTAINERS:
            continue
        inside = [all(p.startswith(prefix) for p in anchor_paths(g)) and
                  bool(anchor_paths(g)) for g in groups]
        end = start
        while end + 1 < len(groups) and inside[end + 1]:
            end += 1
        outside = [p for k, g in enumerate(groups) if not start <= k <= end
                   for p in anchor_paths(g)]
        if end == start or any(p.startswith(prefix) for p in outside):
            continue
        kind = _run_kind(groups[start:end + 1], modules)
        if kind:
            return end, kind
    return None


def _run_kind(run: list[Group], modules: dict[str, nn.Module]) -> str | None:
    regions = [g.anchor for g in run if g.anchor in REGION_KINDS]
    if any(g.anchor not in ("conv",) + REGION_KINDS for g in run) or len(regions) > 1:
        return None
    if regions:
        return regions[0]
    shape = []
    for group in run:  # one entry per layer: a mixed conv's chunks are one layer
        layer = set()
        for path in anchor_paths(group):
            conv = modules.get(path)
            if isinstance(conv, nn.Conv2d):
                depthwise = conv.groups > 1 and conv.groups == conv.in_channels
                layer.add("dw" if depthwise else conv.kernel_size[0])
        if len(layer) > 1 and "dw" not in layer and 1 in layer:
            return None  # a pointwise and a spatial chunk: no one kernel
        if layer:
            shape.append("dw" if "dw" in layer else max(layer))
    if shape in ([1, "dw", 1], ["dw", 1]):
        return "inverted_residual"
    if shape == [3, 1]:
        return "fused_inverted_residual"
    return None


def label_groups(groups: list[Group]) -> list[str]:
    """Block kinds: anchors' kinds, then stem/transition/head by position."""
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


def _strided(group: Group) -> bool:
    first, last = node_shape(group.core[0].input), node_shape(group.core[-1].output)
    return len(first) == 4 and len(last) == 4 and last[-1] < first[-1]


def owner_path(paths: list[str], root: nn.Module) -> str:
    """Deepest non-container module holding all ``paths`` ('' if the root)."""
    prefix = _common_prefix(paths) if len(paths) > 1 else ".".join(
        paths[0].split(".")[:-1]) if paths else ""
    while prefix and type(root.get_submodule(prefix)) in _CONTAINERS:
        prefix = prefix.rpartition(".")[0]
    if not prefix and len(paths) == 1:
        return paths[0]
    return prefix


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
