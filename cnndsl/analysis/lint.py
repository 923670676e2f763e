"""Lint rules: design smells that compile fine but are probably mistakes.

Each rule is a pure function of the figures returning diagnostics; RULES lists code,
severity, summary and rule. Rationales live in docs/lint.md (one section per code).
A rule is disabled in the spec with `disable L003` or on the CLI with `--disable L003`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..diagnostics import Diagnostic
from ..ir import Network, Node
from ..ops import GLOBAL, OPS
from .figures import Figures

FC_SHARE = 0.5  # L001: one fc layer holding more than this share of all parameters...
FC_MIN_PARAMS = 1_000_000  # ...and at least this many (small nets such as LeNet are exempt)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str  # "warning" or "error" (errors make `cnndsl lint` exit 1)
    summary: str
    check: Callable[[Figures, dict[str, list[Node]]], list[Diagnostic]]


def _diag(rule: str, message: str, node: Node, hint: str | None = None) -> Diagnostic:
    return Diagnostic(RULES[rule].severity, rule, message, node.span, hint)


def consumers(network: Network) -> dict[str, list[Node]]:
    """For each node, the nodes that read its output (one pass)."""
    out: dict[str, list[Node]] = {n.name: [] for n in network.nodes}
    for n in network.nodes:
        for i in n.inputs:
            out[i].append(n)
    return out


def _alone(node: Node, readers: dict[str, list[Node]]) -> bool:
    """True if no other path reads this node's input, so pixels it skips never reach the output."""
    return all(len({r.name for r in readers[i]}) == 1 for i in node.inputs)


# Rules -----------------------------------------------------------------------------------------


def fc_dominates(fig: Figures, readers) -> list[Diagnostic]:
    total = fig.total_params
    out = []
    for n in fig.network.layers:
        p = fig.params[n.name]
        if n.op == "fc" and p >= FC_MIN_PARAMS and p > FC_SHARE * total:
            fan_in = fig.network.node(n.inputs[0]).shape[0]
            out.append(
                _diag(
                    "L001",
                    f"`{n.name}` ({fan_in:,} -> {n.attrs['out']:,}) holds {p:,} of the network's "
                    f"{total:,} parameters ({100 * p / total:.1f} %)",
                    n,
                    "pool the feature map first (`gap` or `adaptive_avgpool`) so the classifier sees "
                    "channels, not pixels",
                )
            )
    return out


def _classifier_head(network: Network) -> Node | None:
    """The first global op (pooling, flatten, fc) of the single-input chain that ends at the output.

    Walking back from the output along single-input layers keeps global ops inside
    branches (a squeeze-and-excitation `gap`) from being taken for the head.
    """
    head, node = None, network.node(network.output)
    while len(node.inputs) == 1:
        window = OPS[node.op].window(node.attrs, [network.node(node.inputs[0]).shape])
        if window == GLOBAL:
            head = node
        node = network.node(node.inputs[0])
    return head


def head_field_too_small(fig: Figures, readers) -> list[Diagnostic]:
    net = fig.network
    if len(net.input_shape) != 3:
        return []
    head = _classifier_head(net)
    if head is None:
        return []
    before = fig.fields[head.inputs[0]]
    if before.is_global:  # e.g. squeeze-and-excitation gates made every field global already
        return []
    _, h, w = net.input_shape
    if before.size[0] >= h and before.size[1] >= w:
        return []
    size = f"{before.size[0]}x{before.size[1]}"
    return [
        _diag(
            "L002",
            f"the classifier head `{head.name}` reads features whose receptive field is {size}, "
            f"smaller than the {h}x{w} input: no feature sees the whole image",
            head,
            "add depth or downsampling before the head, or accept it and `disable L002`",
        )
    ]


def bias_before_bn(fig: Figures, readers) -> list[Diagnostic]:
    out = []
    for n in fig.network.layers:
        if (
            n.op in ("conv", "fc")
            and n.attrs["bias"]
            and readers[n.name]
            and all(r.op == "bn" for r in readers[n.name])
        ):
            out.append(
                _diag(
                    "L003",
                    f"`{n.name}` has a bias right before batch norm `{readers[n.name][0].name}`, "
                    "which subtracts the mean and so cancels it",
                    n,
                    f"write `bias=false` (saves {n.attrs['out']:,} parameters)",
                )
            )
    return out


def _dropped(size: int, k: int, s: int, p: int, d: int, out: int) -> int:
    last = (out - 1) * s - p + d * (k - 1)  # the last input row the last window reaches
    return max(0, size - 1 - last)


def drops_border(fig: Figures, readers) -> list[Diagnostic]:
    out = []
    for n in fig.network.layers:
        if n.op not in ("conv", "maxpool", "avgpool") or n.attrs.get("ceil", False) or not _alone(n, readers):
            continue
        _, h, w = fig.network.node(n.inputs[0]).shape
        (kh, kw), (sh, sw), (ph, pw) = n.attrs["kernel"], n.attrs["stride"], n.attrs["pad"]
        dh, dw = n.attrs.get("dilation", (1, 1))
        rows, cols = _dropped(h, kh, sh, ph, dh, n.shape[1]), _dropped(w, kw, sw, pw, dw, n.shape[2])
        if rows or cols:
            what = " and ".join(x for x in (f"{rows} row(s)" if rows else "", f"{cols} column(s)" if cols else "") if x)
            out.append(
                _diag(
                    "L004",
                    f"`{n.name}` silently drops the last {what} of its {h}x{w} input",
                    n,
                    "pad the input, change kernel/stride so they divide the size, or use `ceil=true` for pooling",
                )
            )
    return out


def stride_over_kernel(fig: Figures, readers) -> list[Diagnostic]:
    out = []
    for n in fig.network.layers:
        if n.op not in ("conv", "maxpool", "avgpool") or not _alone(n, readers):
            continue
        d = n.attrs.get("dilation", (1, 1))
        eff = [d[a] * (n.attrs["kernel"][a] - 1) + 1 for a in (0, 1)]
        if any(s > k for s, k in zip(n.attrs["stride"], eff, strict=True)):
            s, k = n.attrs["stride"], eff
            out.append(
                _diag(
                    "L005",
                    f"`{n.name}` has stride {s[0]}x{s[1]} larger than its kernel {k[0]}x{k[1]}: "
                    "some input pixels are never seen by any path",
                    n,
                    "make the kernel at least as large as the stride",
                )
            )
    return out


def softmax_not_last(fig: Figures, readers) -> list[Diagnostic]:
    return [
        _diag(
            "L006",
            f"softmax `{n.name}` is not the network's output: later layers see probabilities",
            n,
            "move softmax to the end, or leave it out and use a loss on logits",
        )
        for n in fig.network.layers
        if n.op == "softmax" and n.name not in fig.network.outputs
    ]


def unused_nodes(fig: Figures, readers) -> list[Diagnostic]:
    """Nodes from which no path reaches the output. The language wires every branch into a merge,
    so only a hand-built or transformed IR can have them; a backend would compute them for nothing."""
    net = fig.network
    live = set(net.outputs)
    for n in reversed(net.nodes):
        if n.name in live:
            live.update(n.inputs)
    return [
        _diag("L007", f"the output of `{n.name}` is never used", n, "remove the layer or merge it into the network")
        for n in net.layers
        if n.name not in live
    ]


def duplicate_branches(fig: Figures, readers) -> list[Diagnostic]:
    out = []
    for n in fig.network.layers:
        if len(n.inputs) > 1 and len(set(n.inputs)) < len(n.inputs):
            twice = sorted({i for i in n.inputs if n.inputs.count(i) > 1})
            out.append(
                _diag(
                    "L008",
                    f"`{n.name}` ({n.op}) takes `{twice[0]}` more than once: two branches are the same tensor",
                    n,
                    "a branch that is just `identity` twice is rarely meant; check the branches",
                )
            )
    return out


RULES: dict[str, Rule] = {
    r.code: r
    for r in [
        Rule("L001", "warning", "one fc layer holds most of the parameters", fc_dominates),
        Rule("L002", "warning", "receptive field smaller than the input at the classifier head", head_field_too_small),
        Rule("L003", "warning", "bias immediately before batch norm", bias_before_bn),
        Rule("L004", "warning", "pooling or striding silently drops rows or columns", drops_border),
        Rule("L005", "error", "stride larger than kernel: pixels never seen", stride_over_kernel),
        Rule("L006", "warning", "softmax not at the end of the network", softmax_not_last),
        Rule("L007", "error", "a layer whose output is never used", unused_nodes),
        Rule("L008", "warning", "a merge takes the same branch twice", duplicate_branches),
    ]
}


def lint(fig: Figures, disabled: frozenset[str] | set[str] = frozenset()) -> list[Diagnostic]:
    """Every finding of every enabled rule, in rule order; `disabled` adds to the spec's own `disable` list."""
    off = set(disabled) | set(fig.network.disabled)
    readers = consumers(fig.network)
    return [d for code, rule in RULES.items() if code not in off for d in rule.check(fig, readers)]
