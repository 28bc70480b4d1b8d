"""fuse_layers: make each linear op one layer with its epilogue.

A DENSE or CONV absorbs the chain that follows it while each link is the sole consumer
of the previous tensor and no graph output: any REQUANTIZE nodes and at most one
activation (RELU, LEAKY_RELU, CLIP).  So ``dense -> requantize -> relu -> requantize``
becomes one node whose accumulator is the dense output.  Values do not change: the
emulator runs the fused node's stages in the same order.
"""

from __future__ import annotations

import dataclasses

from ..ir import Graph, Node, Op

ACTIVATIONS = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP})


def fuse_layers(graph: Graph) -> Graph:
    consumers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    absorbed: set[int] = set()
    fused: dict[int, Node] = {}
    for node in graph.nodes:
        if node.op not in (Op.DENSE, Op.CONV) or node.epilogue:
            continue
        chain: list[Node] = []
        tail = node.outputs[0]
        seen_activation = False
        while True:
            users = consumers.get(tail, [])
            if len(users) != 1 or tail in graph.outputs:
                break
            nxt = users[0]
            absorbable = nxt.op == Op.REQUANTIZE or (nxt.op in ACTIVATIONS and not seen_activation)
            if nxt.inputs[0] != tail or not absorbable:
                break
            seen_activation |= nxt.op in ACTIVATIONS
            chain.append(nxt)
            tail = nxt.outputs[0]
        if not chain:
            continue
        absorbed.update(id(n) for n in chain)
        fused[id(node)] = dataclasses.replace(
            node, outputs=chain[-1].outputs, epilogue=tuple(chain),
            onnx_nodes=tuple(dict.fromkeys(node.onnx_nodes + sum((n.onnx_nodes for n in chain), ()))))
    nodes = [fused.get(id(n), n) for n in graph.nodes if id(n) not in absorbed]
    return graph.with_nodes(nodes)
