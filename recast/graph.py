"""Trace a model with torch.fx and cut it where all information passes one node.

A *cut* is a node every input-to-output path goes through: it dominates the
output. Between two consecutive cuts lies a *piece*: a single op in a plain
chain, or a whole multi-branch region (a residual block, a dense block, an
inception module). Pieces are the smallest units that can be run alone on
the previous cut's value, so any grouping of them runs exactly like the
teacher.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from recast.errors import WalkError
from recast.ops import node_role
from recast.tracing import input_error, trace_module


@dataclass
class Piece:
    """The nodes strictly after one cut up to and including the next cut."""

    input: fx.Node
    output: fx.Node
    nodes: list[fx.Node]
    roles: dict[fx.Node, str] = field(default_factory=dict)

    @property
    def single(self) -> bool:
        return len(self.real_nodes) == 1

    @property
    def real_nodes(self) -> list[fx.Node]:
        """Nodes that compute, not just read shapes or attributes."""
        return [n for n in self.nodes if self.roles[n] not in ("get_attr",)]

    @property
    def role(self) -> str:
        return self.roles[self.output]


@dataclass
class TracedModel:
    """A traced teacher, its node graph and its cut pieces."""

    module: fx.GraphModule
    graph: nx.DiGraph
    input: fx.Node
    output: fx.Node
    pieces: list[Piece]
    root: nn.Module  # the original model: fx flattens its containers
    notes: list[str] = field(default_factory=list)  # e.g. modules made leaves

    @property
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.module.named_modules())


def trace(
    model: nn.Module, example: torch.Tensor, leaf_modules: Sequence[str] = (),
    leaf_functions: Sequence[Callable[..., Any]] = (),
) -> TracedModel:
    """Trace ``model`` and cut it into pieces; errors name the node at fault.

    ``leaf_modules`` (class names or module paths) and ``leaf_functions`` stay
    whole as one call each in the graph.
    """
    name = type(model).__name__
    gm, notes = trace_module(model, example, leaf_modules, leaf_functions)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        names = ", ".join(n.name for n in placeholders)
        raise WalkError(
            f"{name}.forward takes {len(placeholders)} inputs ({names}); "
            f"recast needs a model with exactly one input tensor"
        )
    try:
        with torch.no_grad():
            gm(example)  # fails plainly first: ShapeProp would print its own traceback
        ShapeProp(gm).propagate(example)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise input_error(model, example, f"{type(exc).__name__}: {reason}") from exc
    output_node = next(n for n in gm.graph.nodes if n.op == "output")
    result = output_node.args[0]
    if not isinstance(result, fx.Node):
        raise WalkError(
            f"{name} returns {type(result).__name__} of several outputs "
            f"(e.g. auxiliary heads); recast needs one output tensor: put the "
            f"model in eval mode or wrap it to return only the logits"
        )
    graph = _to_networkx(gm)
    roles = _roles(gm)
    pieces = _cut(graph, placeholders[0], result, roles)
    return TracedModel(gm, graph, placeholders[0], result, pieces, model, notes)


def _to_networkx(gm: fx.GraphModule) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node in gm.graph.nodes:
        graph.add_node(node)
        for source in node.all_input_nodes:
            graph.add_edge(source, node)
    return graph


def _roles(gm: fx.GraphModule) -> dict[fx.Node, str]:
    """Roles per node; arithmetic on sizes (no tensor result) is a reshape,
    even ``h - k`` that would otherwise look like a residual add."""
    modules = dict(gm.named_modules())
    roles = {node: node_role(node, modules) for node in gm.graph.nodes}
    for node, role in roles.items():
        if node.op.startswith("call_") and "tensor_meta" not in node.meta:
            roles[node] = "reshape"
    return roles


def node_shape(node: fx.Node) -> tuple[int, ...]:
    """The shape shape propagation recorded for ``node``; () if not a tensor."""
    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else ()


def _cut(
    graph: nx.DiGraph, source: fx.Node, sink: fx.Node, roles: dict[fx.Node, str]
) -> list[Piece]:
    """Split the input-to-output nodes into pieces between dominating cuts."""
    live = nx.descendants(graph, source) & nx.ancestors(graph, sink)
    live |= {source, sink}
    flow = graph.subgraph(live)
    idom = nx.immediate_dominators(flow, source)
    cuts = [sink]
    while cuts[-1] is not source:
        cuts.append(idom[cuts[-1]])
    cuts.reverse()
    index = {node: i for i, node in enumerate(cuts)}

    def owner(node: fx.Node) -> int:
        """Index of the piece that ends at the nearest cut after ``node``."""
        up = idom[node]
        while up not in index:
            up = idom[up]
        return index[up]

    order = {node: i for i, node in enumerate(sink.graph.nodes)}
    members: list[list[fx.Node]] = [[] for _ in cuts[1:]]
    for node in sink.graph.nodes:  # fx order is topological
        if node in live and node is not source:
            members[owner(node)].append(node)
    pieces = []
    for i, nodes in enumerate(members):
        nodes = _with_constants(graph, nodes, live, order)
        piece = Piece(cuts[i], cuts[i + 1], nodes)
        piece.roles = {n: roles[n] for n in nodes}
        pieces.append(piece)
    return pieces


def _with_constants(
    graph: nx.DiGraph, nodes: list[fx.Node], live: set[fx.Node], order: dict[fx.Node, int]
) -> list[fx.Node]:
    """Add the input-free nodes (parameters, constants) a piece reads."""
    extra: set[fx.Node] = set()
    stack = [p for n in nodes for p in graph.predecessors(n) if p not in live]
    while stack:
        node = stack.pop()
        if node in extra or node.op == "placeholder":
            continue
        extra.add(node)
        stack.extend(p for p in graph.predecessors(node) if p not in live)
    if not extra:
        return nodes  # already in graph order
    return sorted(set(nodes) | extra, key=order.__getitem__)


def extract(traced: TracedModel, pieces: list[Piece], name: str) -> fx.GraphModule:
    """A standalone module that runs ``pieces`` (consecutive) on one input."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {pieces[0].input: graph.placeholder("x")}
    for piece in pieces:
        for node in piece.nodes:
            if node not in env:
                env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[pieces[-1].output])
    graph.lint()
    return fx.GraphModule(traced.module, graph, class_name=name)
