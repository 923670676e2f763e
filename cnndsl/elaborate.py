"""AST → IR: blocks, repetition and arguments expand into a DAG of primitive nodes.

The elaborator is an interpreter over the AST. It applies each layer expression
to a tensor (a node name and its shape) and returns the output tensor, creating
IR nodes through the op table as it goes. Shapes are known as soon as a node
exists, so a block can ask for `in_channels`, and a shape error is reported at
the spec line that caused it. After an error the affected tensor is poisoned
(None): later layers on it are skipped, while independent errors elsewhere are
still found and reported together.

Three parts, one job each: binding.py matches a call's arguments to a signature (layers and blocks
alike), graph.py adds nodes under their names and within the limits, and this module interprets:
values, layers, chains, repeats, labels, blocks and merges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import ast, ops
from .binding import BlockWording, Parameter, Signature, Wording, bound_values
from .diagnostics import Diagnostic, Note, did_you_mean, error, warning
from .evaluate import BUILTINS, CONSTANTS, EvalError, Evaluator, Poisoned, describe
from .graph import Aborted, GraphBuilder, NameScope, Tensor
from .ir import Attrs, Frame, Node, Shape, format_shape
from .limits import BLOCK_CALL_WORK, MAX_BLOCK_DEPTH, MAX_NODES, SCOPE_WORK, work_budget
from .modules import ModuleScope
from .source import Span

COMBINATORS = ("residual", "add", "mul", "concat")
ALIGNS = ("crop", "upsample")  # merge(..., align=KIND)
# How each alignment is written in the op table: (op name, attributes) taking a map to (h, w).
ALIGN_OPS = {
    "crop": lambda size: ("crop", {"size": size}),
    "upsample": lambda size: ("upsample", {"size": size, "mode": "nearest"}),
}
SHAPE_NAMES = ("in_channels", "in_height", "in_width")


@dataclass
class Thunk:
    """A block argument, evaluated lazily in the caller's environment (it may be a layer)."""

    expr: ast.Expr
    env: Env
    cache: Any = None
    done: bool = False


@dataclass(frozen=True)
class Env:
    module: ModuleScope
    values: dict  # params and repeat variables: name -> value or Thunk
    x: Tensor | None  # the input of the enclosing block (for in_channels); None when poisoned
    tensors: dict = field(default_factory=dict)  # named tensors (`c4 = ...`), top-level chains only


@dataclass(frozen=True)
class Ctx:
    env: Env
    names: NameScope
    trace: tuple[Frame, ...] = ()
    active: tuple[str, ...] = ()  # blocks being expanded, for the recursion backstop


@dataclass
class Elaborator:
    """The interpreter: applies layer expressions to tensors, through the graph builder.

    Public use (frontend.py): `network_body` elaborates a spec's body from its input, `top_value`
    evaluates a top-level value (an `expect` line), `report` adds a diagnostic; `nodes`,
    `diagnostics` and `work` are what came out.
    """

    max_nodes: int = MAX_NODES
    max_work: int | None = None  # elaboration steps; None: limits.work_budget(max_nodes)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _reported: set[Diagnostic] = field(default_factory=set)
    _layers: dict[tuple, tuple[str, Attrs, Shape]] = field(default_factory=dict)  # see primitive
    _surfaces: dict[str, ops.Surface | None] = field(default_factory=dict)
    _signatures: dict[str, Signature] = field(default_factory=dict)  # written layer name -> its signature
    _sizes: dict[Any, tuple[Any, int]] = field(default_factory=dict)  # id(expr) -> (expr, size), cached
    _block_sizes: dict[int, int] = field(default_factory=dict)  # id(BlockDef) -> static_size of its body
    _later: dict[str, Span] = field(default_factory=dict)  # named tensors, where each is defined

    def __post_init__(self) -> None:
        if self.max_work is None:
            self.max_work = work_budget(self.max_nodes)
        self.graph = GraphBuilder(self.max_nodes, self.max_work, self.report)
        self.charge = self.graph.charge

    @property
    def nodes(self) -> list[Node]:
        return self.graph.nodes

    @property
    def work(self) -> int:
        """Elaboration steps taken so far (GraphBuilder.charge)."""
        return self.graph.work

    # -- the public entry points -----------------------------------------------------------
    def network(
        self,
        chains: list[ast.TensorDef | ast.Body],
        outputs: list[ast.Name],
        module: ModuleScope,
        shape: Shape,
        span: Span,
    ) -> tuple[str, ...] | None:
        """Elaborate a network on an input of `shape` (its node first): the chains in order, each
        `tensor name = chain` naming its result for the chains after it. The outputs are the tensors named in
        `outputs`, or else the result of the one unnamed chain (the body). Returns the output node
        names, or None after errors (each reported)."""
        names = NameScope()
        x = self.graph.input(shape, span, names)
        tensors: dict[str, Tensor | None] = {}
        defined: dict[str, Span] = {}
        self._later = {c.name: c.name_span for c in chains if isinstance(c, ast.TensorDef)}
        body: Tensor | None = None
        refused: set[str] = set()  # names refused (reported): an output naming one is not reported again
        for c in chains:
            try:
                # one dict for every chain: a chain sees the names defined before it (no copy per statement)
                out = self.apply(c.expr, x, Ctx(Env(module, {}, x, tensors), names))
            except Aborted as abort:
                self.report(abort.args[0])
                return None
            except RecursionError:
                self.report(error("E002", "the spec is nested too deeply to expand", c.span))
                return None
            if isinstance(c, ast.Body):
                body = out
            elif self.tensor_name_ok(c, defined, module):
                tensors[c.name], defined[c.name] = out, c.name_span
            else:
                refused.add(c.name)
        if not outputs:
            return None if body is None else (body.name,)
        return self.outputs(outputs, tensors, refused)

    def tensor_name_ok(self, c: ast.TensorDef, defined: dict[str, Span], module: ModuleScope) -> bool:
        if c.name in defined:
            self.report(
                error(
                    "E106",
                    f"the tensor `{c.name}` is named twice",
                    c.name_span,
                    "give each tensor its own name",
                    [Note(defined[c.name], "first named here")],
                )
            )
            return False
        if self.is_layer_name(c.name, Env(module, {}, None)) or c.name in module.consts or c.name in SHAPE_NAMES:
            self.report(
                error(
                    "E106",
                    f"`{c.name}` already names a layer, block or constant; a tensor needs its own name",
                    c.name_span,
                    f"call it `{c.name}_out`",
                )
            )
            return False
        return True

    def outputs(self, listed: list[ast.Name], tensors: dict, refused: set[str]) -> tuple[str, ...] | None:
        """The node names of the tensors listed by `output`, checked: known, each once, computed by a layer."""
        result: list[str] = []
        seen: dict[str, ast.Name] = {}
        ok = True
        for n in listed:
            if n.id in refused:
                ok = False
                continue
            if n.id not in tensors:
                hint = did_you_mean(n.id, list(tensors)) or "name a tensor first: `tensor head = ... -> fc(10)`"
                self.report(error("E101", f"`output`: no tensor named `{n.id}`", n.span, hint))
                ok = False
                continue
            t = tensors[n.id]
            if t is None:  # its chain had an error, already reported
                ok = False
                continue
            first = seen.get(t.name)
            if first is not None:
                same = "is listed twice" if first.id == n.id else f"is the same tensor as `{first.id}`"
                self.report(
                    error(
                        "E106",
                        f"the output `{n.id}` {same}",
                        n.span,
                        "list each output once",
                        [Note(first.span, "listed here")],
                    )
                )
                ok = False
                continue
            if t.name == "input":
                self.report(
                    error("E108", f"the output `{n.id}` is the input itself", n.span, "an output is computed by layers")
                )
                ok = False
                continue
            seen[t.name] = n
            result.append(t.name)
        return tuple(result) if ok else None

    def unused(self, outputs: tuple[str, ...]) -> None:
        self.graph.unused(outputs)

    def top_value(self, e: ast.Expr, module: ModuleScope) -> Any:
        """A value at the top level of `module` (no input tensor in scope). Raises EvalError, Poisoned,
        or Aborted when the work budget is spent."""
        return self.value(e, Env(module, {}, None))

    def size(self, e: Any) -> int:
        """The number of AST nodes in an expression (cached): the cost of evaluating it once."""
        hit = self._sizes.get(id(e))
        if hit is None:
            hit = self._sizes[id(e)] = (e, ast.size(e))  # the entry keeps e alive, so its id stays unique
        return hit[1]

    # -- reporting --------------------------------------------------------------------
    def report(self, d: Diagnostic) -> None:
        if d not in self._reported:  # a repeat or a reused block reports a mistake once
            self._reported.add(d)
            self.diagnostics.append(d)

    def evaluator(self, env: Env) -> Evaluator:
        return Evaluator(lambda name, span: self.lookup_value(name, span, env), self.charge)

    def value(self, e: ast.Expr, env: Env) -> Any:
        self.charge(self.size(e), e.span)
        return self.evaluator(env).value(e)

    def lookup_value(self, name: str, span: Span, env: Env) -> Any:
        if name in env.tensors and name not in env.values:
            raise EvalError(
                error(
                    "E103",
                    f"`{name}` is a named tensor, not a value",
                    span,
                    f"use it as a layer, e.g. `{name} -> conv3x3(64)` or `add({name}, identity)`",
                )
            )
        if name in env.values:
            v = env.values[name]
            if isinstance(v, Thunk):
                if not v.done:
                    v.cache, v.done = self.value(v.expr, v.env), True
                return v.cache
            return v
        if name in env.module.consts:
            return env.module.consts[name]
        if name in SHAPE_NAMES:
            if env.x is None:
                raise Poisoned()
            if len(env.x.shape) != 3:
                if name == "in_channels":
                    return env.x.shape[0]
                raise EvalError(error("E205", f"`{name}` is unknown: the input here is a flat vector", span))
            return env.x.shape[SHAPE_NAMES.index(name)]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if self.is_layer_name(name, env):
            raise EvalError(error("E103", f"`{name}` is a layer, not a value", span))
        candidates = [*env.values, *env.module.consts, *SHAPE_NAMES, *CONSTANTS]
        raise EvalError(error("E101", f"unknown name `{name}`", span, did_you_mean(name, candidates)))

    def is_layer_name(self, name: str, env: Env) -> bool:
        return (
            name in COMBINATORS
            or name == "identity"
            or name in env.module.blocks
            or name in env.tensors
            or ops.lookup(name) is not None
        )

    # -- layers -------------------------------------------------------------------------
    def apply(self, e: ast.Expr, x: Tensor | None, ctx: Ctx) -> Tensor | None:
        graph = self.graph
        if graph.work >= graph.max_work:  # charge(1), inlined: this is the elaborator's hottest path
            raise Aborted(graph.out_of_work(e.span))
        graph.work += 1
        if isinstance(e, ast.Name):  # the common case first
            return self.call(e.id, (), e.span, e.span, x, ctx)
        if isinstance(e, ast.Pipe):
            for item in e.items:
                x = self.apply(item, x, ctx)
            return x
        if isinstance(e, ast.Repeat):
            return self.repeat(e, x, ctx)
        if isinstance(e, ast.Label):
            return self.label(e, x, ctx)
        if isinstance(e, ast.Cond):
            try:
                chosen = e.then if self.evaluator(ctx.env).truth(self.value(e.test, ctx.env), e.test.span) else e.orelse
            except EvalError as err:
                self.report(err.diagnostic)
                return None
            except Poisoned:
                return None
            return self.apply(chosen, x, ctx)
        if isinstance(e, ast.Call):
            if e.func in BUILTINS:
                self.report(error("E103", f"`{e.func}(...)` is a value, not a layer", e.span))
                return None
            return self.call(e.func, e.args, e.span, e.func_span, x, ctx)
        self.report(
            error(
                "E103",
                "expected a layer here, found a value",
                e.span,
                "a chain is made of layers joined by `->`, e.g. `conv3x3(64) -> relu`",
            )
        )
        return None

    def repeat(self, e: ast.Repeat, x: Tensor | None, ctx: Ctx) -> Tensor | None:
        try:
            n = self.value(e.count, ctx.env)
        except EvalError as err:
            self.report(err.diagnostic)
            return None
        except Poisoned:
            return None
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            self.report(
                error("E103", f"a repeat count must be a non-negative integer, got {describe(n)}", e.count.span)
            )
            return None
        expected = n * self.static_size(e.body, ctx.env)
        self.graph.admit_repeat(e, n, expected)
        self.graph.repeats.append(e)
        try:
            if e.var is None:  # the context stays as it is: no new one per iteration
                for _ in range(n):
                    x = self.apply(e.body, x, ctx)
                return x
            for i in range(n):
                self.charge(SCOPE_WORK + len(ctx.env.values), e.span)  # a new environment, copied
                env = Env(ctx.env.module, {**ctx.env.values, e.var: i}, ctx.env.x, ctx.env.tensors)
                x = self.apply(e.body, x, Ctx(env, ctx.names, ctx.trace, ctx.active))
        finally:
            self.graph.repeats.pop()
        return x

    def static_size(self, e: ast.Expr, env: Env) -> int:
        """static_size, cached per AST node: a repeat inside a repeat asks for it at every iteration.
        (One AST node lies in one lexical scope, so its blocks and bound names are always the same.)"""
        key = ("static", id(e))
        hit = self._sizes.get(key)
        if hit is None:
            size = static_size(e, env.module.blocks, _Bound(env.values, env.tensors), self._block_sizes)
            hit = self._sizes[key] = (e, size)
        return hit[1]

    def label(self, e: ast.Label, x: Tensor | None, ctx: Ctx) -> Tensor | None:
        inner = e.expr
        if isinstance(inner, (ast.Name, ast.Call)):  # one layer or block: the label is its name
            name = inner.id if isinstance(inner, ast.Name) else inner.func
            args = () if isinstance(inner, ast.Name) else inner.args
            fspan = inner.span if isinstance(inner, ast.Name) else inner.func_span
            return self.call(name, args, inner.span, fspan, x, ctx, label=(e.name, e.span))
        self.charge(SCOPE_WORK, e.span)  # a new name scope
        claimed = ctx.names.claim(e.name, e.span)
        if isinstance(claimed, Diagnostic):
            self.report(claimed)
            return None
        return self.apply(inner, x, Ctx(ctx.env, ctx.names.child(claimed), ctx.trace, ctx.active))

    def call(self, name, args, span, fspan, x, ctx: Ctx, label=None) -> Tensor | None:
        env = ctx.env
        if name in env.values:
            bound = env.values[name]
            if isinstance(bound, Thunk) and not args:  # a layer passed to a block as an argument
                return self.apply(bound.expr, x, Ctx(bound.env, ctx.names, ctx.trace, ctx.active))
            self.report(error("E103", f"`{name}` is a value, not a layer", fspan))
            return None
        if name in env.tensors:  # a named tensor: the chain continues from it, whatever came before
            if args or label:
                what = "takes no arguments" if args else "cannot be labelled: it is labelled by its name"
                self.report(error("E103", f"the named tensor `{name}` {what}", span, f"write `{name} -> ...`"))
                return None
            return env.tensors[name]
        if name in COMBINATORS:
            return self.merge(name, args, span, x, ctx, label)
        if name == "identity":
            if args:  # `identity(3)` would silently drop its argument
                self.report(error("E102", "`identity` takes no arguments", args[0].span, "write `identity`"))
                return None
            return x
        if name in env.module.blocks:
            return self.block(name, args, span, x, ctx, label)
        surface = self.surface(name)
        if surface is not None:
            return self.primitive(surface, args, span, fspan, x, ctx, label, written=name)
        if name in env.module.consts or name in BUILTINS:
            self.report(error("E103", f"`{name}` is a value, not a layer", fspan))
            return None
        later = self._later.get(name)
        if later is not None and name not in env.tensors:
            self.report(
                error(
                    "E101",
                    f"`{name}` is used before it is defined",
                    fspan,
                    "a named tensor can be used only after its line",
                    [Note(later, f"`{name}` is defined here")],
                )
            )
            return None
        candidates = [*ops.surface_names(), *env.module.blocks, *COMBINATORS, "identity", *env.tensors]
        sized = re.match(r"^(conv|dwconv|maxpool|avgpool)[0-9x]*$", name)
        hint = did_you_mean(name, candidates)
        if sized and not hint:
            hint = f"kernel sizes are written `{sized.group(1)}3x3` or `{sized.group(1)}3`"
        self.report(error("E101", f"unknown layer `{name}`", fspan, hint))
        return None

    # -- blocks -----------------------------------------------------------------------------
    def block(self, name, args, span, x, ctx: Ctx, label) -> Tensor | None:
        definition, module = ctx.env.module.blocks[name]
        if name in ctx.active:
            self.report(error("E105", f"block `{name}` calls itself", span))
            return None
        if len(ctx.trace) >= MAX_BLOCK_DEPTH:
            self.report(error("E104", f"blocks nested more than {MAX_BLOCK_DEPTH} deep", span))
            return None
        self.charge(BLOCK_CALL_WORK + len(args) + len(definition.params), span)
        values, accept = bound_values(lambda a: Thunk(a.value, ctx.env))
        ok = self.block_signature(name, definition).bind(args, span, accept, self.report)
        inner_env = Env(module, values, x)
        for p in definition.params:  # defaults may use earlier parameters and in_channels
            if p.name not in values and p.default is not None:
                values[p.name] = Thunk(p.default, inner_env)
        if not ok:
            return None
        scope_name = self.graph.claim_or_fresh(ctx.names, label, name)
        if scope_name is None:
            return None
        frame = Frame(name, span, ctx.names.prefix + scope_name)
        inner = Ctx(inner_env, ctx.names.child(scope_name), (*ctx.trace, frame), (*ctx.active, name))
        return self.apply(definition.body, x, inner)

    def block_signature(self, name: str, definition: ast.BlockDef) -> Signature:
        key = f"block {name} {id(definition)}"
        hit = self._signatures.get(key)
        if hit is None or hit[0] is not definition:
            params = tuple(Parameter(p.name, True, p.default is None) for p in definition.params)
            hit = self._signatures[key] = (definition, Signature(params, BlockWording(name, params)))
        return hit[1]

    # -- merges -----------------------------------------------------------------------------
    def merge(self, name, args, span, x, ctx: Ctx, label) -> Tensor | None:
        if name == "residual":
            body = [a for a in args if a.name is None]
            extra = [a for a in args if a.name not in (None, "shortcut")]
            shortcut = [a for a in args if a.name == "shortcut"]
            if len(body) != 1 or extra or len(shortcut) > 1:
                self.report(
                    error(
                        "E102",
                        "`residual` takes one body and an optional `shortcut=`",
                        span,
                        "e.g. residual(conv3x3(64) -> bn, shortcut=conv1x1(64, stride=2) -> bn)",
                    )
                )
                return None
            outs = [self.apply(body[0].value, x, ctx)]
            if shortcut:
                outs.append(
                    self.apply(
                        shortcut[0].value,
                        x,
                        Ctx(ctx.env, ctx.names.child(ctx.names.fresh("shortcut")), ctx.trace, ctx.active),
                    )
                )
            else:
                outs.append(x)
            exprs = [body[0].value, shortcut[0].value if shortcut else None]
            op = "add"
        else:
            align, args = self.align_kind(name, args)
            if align is False:
                return None
            if any(a.name is not None for a in args) or len(args) < 2:
                self.report(
                    error(
                        "E102",
                        f"`{name}` takes two or more branches, as positional arguments",
                        span,
                        f"e.g. {name}(conv1x1(64), conv3x3(64))",
                    )
                )
                return None
            outs = [
                self.apply(a.value, x, Ctx(ctx.env, ctx.names.child(ctx.names.fresh("branch")), ctx.trace, ctx.active))
                for a in args
            ]
            exprs = [a.value for a in args]
            op = name
            if align is not None and all(o is not None for o in outs):
                outs = self.aligned(align, outs, span, ctx)
        if any(o is None for o in outs):
            return None
        definition = ops.OPS[op]
        try:
            shape = definition.shape(Attrs(), [o.shape for o in outs])
        except ops.OpError as err:
            notes = [
                Note(o.span if e is not None else span, f"this branch gives {format_shape(o.shape)}")
                for o, e in zip(outs, exprs)
            ]
            hint = err.hint
            if name == "residual" and err.code in ("E202", "E203"):
                hint = (
                    "give the residual a projection shortcut that matches the body, e.g. "
                    "`shortcut=conv1x1(C, stride=S) -> bn`"
                )
            elif err.code == "E203" and len(outs[0].shape) == 3:
                hint = (
                    f"say how to align them: `{name}(..., align=crop)` center-crops to the smallest, "
                    f"`{name}(..., align=upsample)` upsamples to the largest"
                )
            self.report(error(err.code, err.message, span, hint, notes))
            return None
        return self.emit(op, {}, outs, shape, span, ctx, op, label)

    def align_kind(self, name: str, args) -> tuple[str | None | bool, tuple]:
        """The `align=` of a merge (`crop` or `upsample`) and the branches without it; False after an error."""
        given = [a for a in args if a.name == "align"]
        rest = tuple(a for a in args if a.name != "align")
        if not given:
            return None, rest
        a = given[-1]
        if len(given) > 1:
            self.report(error("E102", "argument `align` given twice", a.span))
            return False, rest
        if not (isinstance(a.value, ast.Name) and a.value.id in ALIGNS):
            self.report(
                error(
                    "E102",
                    f"`align` of `{name}` is `crop` or `upsample`",
                    a.value.span,
                    "`align=crop` center-crops every branch to the smallest size (U-Net); "
                    "`align=upsample` upsamples every branch to the largest, nearest-neighbour (FPN)",
                )
            )
            return False, rest
        return a.value.id, rest

    def aligned(self, align: str, outs: list[Tensor], span: Span, ctx: Ctx) -> list[Tensor | None]:
        """The branches brought to one spatial size by explicit crop or upsample nodes (never a guess:
        the spec said `align=`); branches already at that size are left as they are."""
        if any(len(o.shape) != 3 for o in outs):
            flat = next(o for o in outs if len(o.shape) != 3)
            self.report(
                error("E205", f"`align` needs feature maps, got {format_shape(flat.shape)}", span, "remove `align=`")
            )
            return [None]
        pick = min if align == "crop" else max
        size = (pick(o.shape[1] for o in outs), pick(o.shape[2] for o in outs))
        out: list[Tensor | None] = []
        for o in outs:
            if o.shape[1:] == size:
                out.append(o)
                continue
            out.append(self.resize(align, o, size, span, ctx))
        return out

    def resize(self, align: str, x: Tensor, size: tuple[int, int], span: Span, ctx: Ctx) -> Tensor | None:
        """One crop or upsample node taking `x` to `size`, through the op table like any layer."""
        op_name, given = ALIGN_OPS[align](size)
        op = ops.OPS.get(op_name)
        if op is None:
            self.report(
                error(
                    "E101",
                    f"`align={align}` needs the `{op_name}` op, which this build lacks",
                    span,
                    "bring the branches to one size with pooling or strides instead",
                )
            )
            return None
        attrs = {p.name: p.default for p in op.params}
        attrs.update(given)
        try:
            attrs = op.resolve(attrs, [x.shape])
            shape = op.shape(Attrs.of(attrs), [x.shape])
        except ops.OpError as err:
            self.report(error(err.code, err.message, span, err.hint))
            return None
        return self.emit(op.name, attrs, [x], shape, span, ctx, op_name, None)

    # -- primitives ---------------------------------------------------------------------------
    def primitive(self, surface: ops.Surface, args, span, fspan, x, ctx: Ctx, label, written: str) -> Tensor | None:
        # A layer written the same way, with the same argument values, on the same input shape resolves
        # to the same attributes and output shape: deep chains and repeats resolve each kind once.
        key = self.layer_key(surface, written, args, x, ctx.env)
        hit = self._layers.get(key) if key is not None else None
        if hit is not None:
            return self.emit(hit[0], hit[1], [x], hit[2], span, ctx, surface.base, label)
        given = self.bind(surface, written, args, span, ctx.env)
        if given is None or x is None:
            return None
        op = surface.op
        attrs = {p.name: p.default for p in op.params}
        attrs.update(surface.preset)
        attrs.update(given)
        if op.name == "fc" and len(x.shape) == 3:
            x = self.implicit_flatten(x, span, ctx)
            if x is None:
                return None
        try:
            attrs = op.resolve(attrs, [x.shape])
            shape = op.shape(Attrs.of(attrs), [x.shape])
        except ops.OpError as err:
            where = next((a.span for a in args if err.arg is not None and a.name == err.arg), span)
            notes = [Note(x.span, f"the input is {format_shape(x.shape)}")] if x.name != "input" else []
            self.report(error(err.code, err.message, where, err.hint, notes))
            return None
        if not self.graph.sizes_ok(op, attrs, x, shape, span):
            return None
        self.check_multiplier(surface, given, x, shape, args, span)
        resolved = (op.name, Attrs.of(attrs), shape)
        if key is not None:
            self._layers[key] = resolved
        return self.emit(*resolved[:2], [x], shape, span, ctx, surface.base, label)

    def check_multiplier(self, surface: ops.Surface, given: dict, x: Tensor, shape: Shape, args, span) -> None:
        """W305: `dwconv3x3(64)` on 64 channels makes 4,096; its positional argument is the channel multiplier,
        not the output width, which a port from nn.Conv2d(64, 64, groups=64) easily mistakes it for."""
        m, c = given.get("multiplier", 1), x.shape[0]
        if surface.preset.get("depthwise") and m > 1 and m == c:
            where = next((a.span for a in args if a.name in (None, "multiplier")), span)
            self.report(
                warning(
                    "W305",
                    f"`dwconv` with multiplier {m} on {c} channels makes {shape[0]:,} channels",
                    where,
                    f"the argument multiplies the channels; for {c} output channels write `dwconv` with no argument",
                )
            )

    def layer_key(self, surface: ops.Surface, written: str, args, x: Tensor | None, env: Env) -> tuple | None:
        """What a primitive layer's resolution depends on, or None where it is not cached (errors, an
        implicit flatten, which warns)."""
        if x is None or (surface.op.name == "fc" and len(x.shape) == 3):
            return None
        try:
            values = tuple(typed(self.arg_value(a.value, env)) for a in args)
        except (EvalError, Poisoned):
            return None  # bind reports it
        return (written, tuple(a.name for a in args), values, x.shape)

    def arg_value(self, e: ast.Expr, env: Env) -> Any:
        if isinstance(e, (ast.Bool, ast.String)) or (isinstance(e, ast.Number) and isinstance(e.value, int)):
            self.charge(1, e.span)  # a literal, as self.value would find it (bind checks its range)
            return e.value
        return self.value(e, env)

    def surface(self, name: str) -> ops.Surface | None:
        """ops.lookup, cached: it parses sized names such as `conv3x3` with a regular expression."""
        if name not in self._surfaces:
            self._surfaces[name] = ops.lookup(name)
        return self._surfaces[name]

    def bind(self, surface: ops.Surface, written: str, args, span, env: Env) -> dict | None:
        """Match a layer call's arguments to the op's signature, evaluating each; report every problem.
        `written` is the name as the spec spells it (`conv3x3`), for messages."""
        signature = self.layer_signature(surface, written)
        given: dict[str, Any] = {}
        spans: dict[str, Span] = {}

        def accept(name: str, a: ast.Arg) -> bool:
            try:
                given[name] = self.value(a.value, env)
            except EvalError as err:
                self.report(err.diagnostic)
                return False
            except Poisoned:
                return False
            spans[name] = a.span
            return True

        ok = signature.bind(args, span, accept, self.report)
        kinds = {p.name: p.kind for p in ops.signature(surface)}
        for pname, v in given.items():
            expected = ops.check_value(kinds[pname], v)
            if expected:
                code = "E104" if isinstance(v, (int, float)) and not isinstance(v, bool) else "E103"
                self.report(error(code, f"`{pname}` must be {expected}, got {describe(v)}", spans[pname]))
                ok = False
        return given if ok else None

    def layer_signature(self, surface: ops.Surface, written: str) -> Signature:
        hit = self._signatures.get(written)
        if hit is None:
            params = tuple(Parameter(p.name, p.positional, p.default is ops.REQUIRED) for p in ops.signature(surface))
            hit = self._signatures[written] = (
                surface,
                Signature(params, Wording(written, params), frozenset(surface.preset), ops.ALIASES_KW),
            )
        return hit[1]

    def implicit_flatten(self, x: Tensor, span: Span, ctx: Ctx) -> Tensor | None:
        c, h, w = x.shape
        if h * w > 1:
            self.report(
                warning(
                    "W301",
                    f"`fc` flattens a {c}x{h}x{w} feature map into {c * h * w:,} features",
                    span,
                    "write `flatten ->` before `fc` to make this explicit",
                )
            )
        return self.emit("flatten", {}, [x], (c * h * w,), span, ctx, "flatten", None)

    def emit(self, op: str, attrs, inputs: list[Tensor], shape: Shape, span: Span, ctx: Ctx, base: str, label):
        return self.graph.emit(op, attrs, inputs, shape, span, ctx.names, ctx.trace, base, label)


class _Bound:
    """Names bound in an environment (parameters, repeat indexes, named tensors), tested without a copy."""

    def __init__(self, *scopes: dict):
        self.scopes = scopes

    def __contains__(self, name: str) -> bool:
        return any(name in s for s in self.scopes)


def static_size(e: ast.Expr, blocks: dict | None = None, bound=frozenset(), memo=None) -> int:
    """A lower bound on the layers an expression expands to, without evaluating it.

    `blocks` (name -> (BlockDef, defining module)) lets a block call count its body, so that
    `[mbconv(40)]x65537` is refused before it expands anything; names in `bound` (block parameters,
    repeat indexes) may stand for any layer, `identity` included, so they count nothing.
    """
    memo = {} if memo is None else memo

    def size(e) -> int:
        if isinstance(e, ast.Pipe):
            return sum(size(i) for i in e.items)
        if isinstance(e, ast.Repeat):
            n = e.count.value if isinstance(e.count, ast.Number) and isinstance(e.count.value, int) else 1
            return max(0, n) * size(e.body)
        if isinstance(e, ast.Label):
            return size(e.expr)
        if isinstance(e, ast.Cond):
            return min(size(e.then), size(e.orelse))
        name = e.func if isinstance(e, ast.Call) else e.id if isinstance(e, ast.Name) else None
        if name is None or name == "identity" or name in bound:
            return 0
        if name in COMBINATORS:  # a bare `concat` is a Name: an error elsewhere, one layer here
            branches = [a for a in e.args if a.name != "align"] if isinstance(e, ast.Call) else []
            return 1 + sum(size(a.value) for a in branches) if isinstance(e, ast.Call) else 1
        if blocks and name in blocks:
            return block_size(*blocks[name])
        return 1

    def block_size(definition: ast.BlockDef, module: ModuleScope) -> int:
        if id(definition) not in memo:  # blocks are never recursive (modules.py checks), so this ends
            memo[id(definition)] = 0  # and a cycle, were there one, would count nothing
            params = frozenset(p.name for p in definition.params)
            memo[id(definition)] = static_size(definition.body, module.blocks, params, memo)
        return memo[id(definition)]

    return size(e)


def typed(v: Any) -> Any:
    """A value with its type, for cache keys: 1, 1.0 and True are equal in Python but not as arguments."""
    if isinstance(v, tuple):
        return (tuple, tuple(typed(i) for i in v))
    return (type(v), v)
