"""Tell what kind of block a multi-branch piece is, from its convs alone.

The main branch of a residual piece is the input-to-output path with the most
convs; its kernel sizes give the kind: [3, 3] basic, [1, 3, 1] bottleneck (also
[1, 3, 3, 1] and longer, Res2Net's hierarchical 3x3s), [1, depthwise, 1]
inverted residual (also with an extra depthwise conv, MobileNetV4's UIR),
[depthwise, 1, 1] ConvNeXt-like. Gate branches do not count: anything computing
a per-channel summary that scales or shifts the map (squeeze-excitation, ECA,
global context, selective-kernel and split attention, whose softmax then is a
gate, not attention).
"""

import networkx as nx
from torch import fx, nn

from recast.graph import Piece, node_shape
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
            if _is_split(piece.input):
                return "conv" if _is_mixed_conv(piece, graph) else "shuffle"
            return "inception"
        convs = [n for n in piece.nodes if roles[n] == "conv"]
        if len(convs) == 1 and "linear" not in present:
            return "conv"  # one conv plus shape bookkeeping, e.g. a patch embedding
        return "reshape" if present <= {"reshape", "get_attr"} else "other"
    if "attention" in present:
        gates = _gate_nodes(piece, graph)
        if any(roles[n] == "attention" for n in piece.nodes if n not in gates):
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
    layout = ["dw" if marker == 0 else "pw" if k == 1 else "k" if k else "?"
              for k, marker in kernels]
    if len(layout) > 3 and layout[0] == layout[-1] == "pw" and set(layout[1:-1]) == {"k"}:
        return "bottleneck"  # 1x1, several spatial convs (Res2Net's scales), 1x1
    if layout == ["dw", "pw", "pw"]:
        return "convnext"  # depthwise then a pointwise MLP, the MLP as 1x1 convs
    if set(layout) == {"dw", "pw"} and layout.count("pw") == 2:
        return "inverted_residual"  # extra depthwise convs around the expansion (UIR)
    if kernels in ([(3, 1)], [(3, 1), (1, 1)]):
        return "fused_inverted_residual"  # EfficientNetV2's FusedMBConv
    if len(kernels) == 1 and kernels[0][1] == 0 and "linear" in present:
        return "convnext"
    if not kernels and "linear" in present:
        return "mlp"
    return "residual"


def main_branch_convs(piece: Piece, graph: nx.DiGraph) -> list[fx.Node]:
    """Convs on the input-to-output path with the most convs, in order."""
    side = _gate_nodes(piece, graph)
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


def _gate_nodes(piece: Piece, graph: nx.DiGraph) -> set[fx.Node]:
    """Side-branch nodes that compute a gate: squeeze-excitation style (after a
    global pool, feeding a multiply), or any branch ending in a per-channel
    summary (spatially 1x1) that a map is multiplied by or shifted by."""
    members = set(piece.nodes)
    local = graph.subgraph(members | {piece.input})
    side: set[fx.Node] = set()
    pools = [n for n in piece.nodes if piece.roles[n] == "global_pool"]
    muls = [n for n in piece.nodes if piece.roles[n] == "mul"]
    for pool in pools if muls else ():
        after = nx.descendants(local, pool) | {pool}
        for mul in muls:  # the operand from the pool is the gate, the other the map
            operands = mul.all_input_nodes
            if len(operands) != 2:
                continue  # a scale by a constant, e.g. NFNet's alpha: not a gate
            for gate, other in (operands, operands[::-1]):
                if gate in after and other not in after:
                    side |= (nx.ancestors(local, gate) | {gate}) & after & members
    for node in piece.nodes:
        if piece.roles[node] not in ("mul", "add"):
            continue
        operands = [a for a in node.all_input_nodes if node_shape(a)]
        out = node_shape(node)
        if len(operands) != 2 or not _is_map(out):
            continue
        for gate, other in (operands, operands[::-1]):
            if _is_summary(node_shape(gate), out) and _is_map(node_shape(other)):
                branch = (nx.ancestors(local, gate) | {gate}) & members
                side |= branch - nx.ancestors(local, other) - {other}
    return side


def _is_map(shape: tuple[int, ...]) -> bool:
    """A batch of feature maps (N, C, H, W), or with a group axis, not 1x1."""
    return len(shape) >= 4 and tuple(shape[-2:]) != (1, 1)


def _is_summary(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """A per-channel value broadcast over a map of shape ``out``: spatially 1x1."""
    return len(shape) == len(out) and tuple(shape[-2:]) == (1, 1)


def _flat_args(node: fx.Node) -> list[object]:
    flat: list[object] = []
    for arg in node.args:
        flat.extend(arg if isinstance(arg, (list, tuple)) else [arg])
    return flat


def _is_split(node: fx.Node) -> bool:
    return target_name(node) in ("chunk", "split", "tensor_split")


def _is_mixed_conv(piece: Piece, graph: nx.DiGraph) -> bool:
    """Split channels, one conv per chunk, concatenated: one conv layer whose channel
    groups have their own kernel sizes (MixNet's MixedConv2d), not a block."""
    roles = piece.roles
    if roles[piece.output] != "cat" or "linear" in roles.values():
        return False
    convs = {n for n in piece.nodes if roles[n] == "conv"}
    local = graph.subgraph(set(piece.nodes) | {piece.input})
    if any(nx.ancestors(local, c) & convs for c in convs):
        return False  # convs in a row: a branch with more than one layer
    return all(len((nx.ancestors(local, a) | {a}) & convs) == 1
               for a in piece.output.all_input_nodes)
