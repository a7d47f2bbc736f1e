"""Tell what kind of block a multi-branch piece is, from its convs alone.

The main branch of a residual piece is the input-to-output path with the most
convs; its kernel sizes give the kind: [3, 3] basic, [1, 3, 1] bottleneck,
[1, depthwise, 1] inverted residual. Squeeze-excitation convs (after a global
pool, feeding a multiply) are side branches and do not count.
"""

import networkx as nx
from torch import fx, nn

from recast.graph import Piece
from recast.ops import target_name

RESIDUAL_KINDS = ("basic", "bottleneck", "inverted_residual", "fused_inverted_residual",
                  "convnext", "mlp",
                  "attention", "residual")


def piece_kind(piece: Piece, graph: nx.DiGraph, modules: dict[str, nn.Module]) -> str:
    """Kind of a piece: its role if single, else a block kind."""
    if piece.single:
        return piece.role
    roles = piece.roles
    present = set(roles.values())
    has_weights = "conv" in present or "linear" in present
    if roles[piece.output] == "cat" and piece.input in _flat_args(piece.output):
        return "dense" if "conv" in present else "other"
    if "add" not in present:
        if "cat" in present and has_weights:
            return "shuffle" if _is_split(piece.input) else "inception"
        convs = [n for n in piece.nodes if roles[n] == "conv"]
        if len(convs) == 1 and "linear" not in present:
            return "conv"  # one conv plus shape bookkeeping, e.g. a patch embedding
        return "reshape" if present <= {"reshape", "get_attr"} else "other"
    if "attention" in present:
        return "attention"
    kernels = main_branch_kernels(piece, graph, modules)
    if kernels == [(3, 1), (3, 1)]:
        return "basic"
    if len(kernels) == 3 and kernels[0][0] == 1 and kernels[2][0] == 1:
        if kernels[1][1] == 0:
            return "inverted_residual"
        return "bottleneck"
    if len(kernels) == 2 and kernels[0][1] == 0 and kernels[1][0] == 1:
        return "inverted_residual"
    if kernels in ([(3, 1)], [(3, 1), (1, 1)]):
        return "fused_inverted_residual"  # EfficientNetV2's FusedMBConv
    if len(kernels) == 1 and kernels[0][1] == 0 and "linear" in present:
        return "convnext"
    if not kernels and "linear" in present:
        return "mlp"
    return "residual"


def main_branch_convs(piece: Piece, graph: nx.DiGraph) -> list[fx.Node]:
    """Convs on the input-to-output path with the most convs, in order."""
    side = _squeeze_excitation_nodes(piece, graph)
    best: dict[fx.Node, list[fx.Node]] = {piece.input: []}
    for node in piece.nodes:
        sources = [p for p in graph.predecessors(node) if p in best]
        if not sources:
            continue
        path = max((best[p] for p in sources), key=len)
        is_conv = piece.roles.get(node) == "conv" and node not in side
        best[node] = path + [node] if is_conv else path
    return best.get(piece.output, [])


def main_branch_kernels(
    piece: Piece, graph: nx.DiGraph, modules: dict[str, nn.Module]
) -> list[tuple[int, int]]:
    """(kernel size, groups marker) of main-branch convs; marker 0 = depthwise."""
    out = []
    for node in main_branch_convs(piece, graph):
        conv = modules.get(str(node.target)) if node.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d):
            out.append((0, 1))
            continue
        depthwise = conv.groups > 1 and conv.groups == conv.in_channels
        out.append((conv.kernel_size[0], 0 if depthwise else 1))
    return out


def _squeeze_excitation_nodes(piece: Piece, graph: nx.DiGraph) -> set[fx.Node]:
    members = set(piece.nodes)
    pools = [n for n in piece.nodes if piece.roles[n] == "global_pool"]
    muls = [n for n in piece.nodes if piece.roles[n] == "mul"]
    if not pools or not muls:
        return set()
    after_pool = set().union(*(nx.descendants(graph, p) for p in pools)) | set(pools)
    before_mul = set().union(*(nx.ancestors(graph, m) for m in muls))
    return after_pool & before_mul & members


def _flat_args(node: fx.Node) -> list[object]:
    flat: list[object] = []
    for arg in node.args:
        flat.extend(arg if isinstance(arg, (list, tuple)) else [arg])
    return flat


def _is_split(node: fx.Node) -> bool:
    return target_name(node) in ("chunk", "split", "tensor_split")
