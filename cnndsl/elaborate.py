"""AST → IR: blocks, repetition and arguments expand into a DAG of primitive nodes.

The elaborator is an interpreter over the AST. It applies each layer expression
to a tensor (a node name and its shape) and returns the output tensor, creating
IR nodes through the op table as it goes. Shapes are known as soon as a node
exists, so a block can ask for `in_channels`, and a shape error is reported at
the spec line that caused it. After an error the affected tensor is poisoned
(None): later layers on it are skipped, while independent errors elsewhere are
still found and reported together.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from . import ast, ops
from .diagnostics import Diagnostic, Note, did_you_mean, error, warning
from .evaluate import BUILTINS, CONSTANTS, EvalError, Evaluator, Poisoned, describe
from .ir import Attrs, Frame, Node, Shape, format_shape
from .limits import BLOCK_CALL_WORK, MAX_BLOCK_DEPTH, MAX_DIM, MAX_ELEMENTS, MAX_NODES, SCOPE_WORK, work_budget
from .modules import ModuleScope
from .source import Span

COMBINATORS = ("residual", "add", "mul", "concat")
SHAPE_NAMES = ("in_channels", "in_height", "in_width")


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: Shape
    span: Span  # where the producing layer was written


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


class NameScope:
    """Hands out stable names: `conv1`, `conv2`, ... per base, inside a dotted prefix."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.used: dict[str, Span | None] = {}
        self.counters: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        k = self.counters.get(base, 0)
        while True:
            k += 1
            if f"{base}{k}" not in self.used:
                break
        self.counters[base] = k
        self.used[f"{base}{k}"] = None
        return f"{base}{k}"

    def claim(self, label: str, span: Span) -> str | Diagnostic:
        if label in self.used:
            where = self.used[label]
            notes = [Note(where, "first used here")] if where else []
            return error(
                "E106",
                f"the name `{self.prefix}{label}` is already used in this scope",
                span,
                "choose another name",
                notes,
            )
        self.used[label] = span
        return label

    def child(self, name: str) -> NameScope:
        return NameScope(f"{self.prefix}{name}.")


@dataclass(frozen=True)
class Ctx:
    env: Env
    names: NameScope
    trace: tuple[Frame, ...] = ()
    active: tuple[str, ...] = ()  # blocks being expanded, for the recursion backstop


class Aborted(Exception):
    """Stops elaboration at once (expansion or work limit)."""


@dataclass
class Elaborator:
    max_nodes: int = MAX_NODES
    max_work: int | None = None  # elaboration steps; None: limits.work_budget(max_nodes)
    nodes: list[Node] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    work: int = 0  # elaboration steps taken so far (see charge)
    repeats: list[ast.Repeat] = field(default_factory=list)  # repeats being iterated, outermost first
    _reported: set[Diagnostic] = field(default_factory=set)
    _layers: dict[tuple, tuple[str, Attrs, Shape]] = field(default_factory=dict)  # see primitive
    _surfaces: dict[str, ops.Surface | None] = field(default_factory=dict)
    _sizes: dict[Any, tuple[Any, int]] = field(default_factory=dict)  # id(expr) -> (expr, size), cached
    _block_sizes: dict[int, int] = field(default_factory=dict)  # id(BlockDef) -> static_size of its body

    def __post_init__(self) -> None:
        if self.max_work is None:
            self.max_work = work_budget(self.max_nodes)

    # -- work -------------------------------------------------------------------------
    def charge(self, cost: int, span: Span) -> None:
        """Count `cost` elaboration steps; stop with a located E107 once the budget is spent.

        Every path that can be taken an unbounded number of times without adding a node (a repeat
        iteration, a block call, an evaluated expression) goes through here, so elaboration time is
        bounded by the budget whatever the spec, not only by the number of nodes it adds.
        """
        if self.work + cost > self.max_work:  # a step beyond the budget is refused, not taken
            raise Aborted(self.out_of_work(span))
        self.work += cost

    def out_of_work(self, span: Span) -> Diagnostic:
        # Blame the outermost repeat: it multiplies all the work inside it (usually the culprit).
        where = self.repeats[0].span if self.repeats else span
        notes = [Note(r.span, "repeated inside this") for r in self.repeats[1:4]]
        if where != span:
            notes.append(Note(span, "the work ran out here"))
        return error(
            "E107",
            f"the spec takes more than {self.max_work:,} elaboration steps to expand",
            where,
            "repeats of `identity`, zero-count repeats and empty blocks still cost work; "
            "lower the repeat counts (raising --max-nodes raises this limit too)",
            notes,
        )

    def size(self, e: Any) -> int:
        """The number of AST nodes in an expression (cached): the cost of evaluating it once."""
        hit = self._sizes.get(id(e))
        if hit is None:
            hit = self._sizes[id(e)] = (e, ast_size(e))  # the entry keeps e alive, so its id stays unique
        return hit[1]

    # -- reporting --------------------------------------------------------------------
    def report(self, d: Diagnostic) -> None:
        if d not in self._reported:  # a repeat or a reused block reports a mistake once
            self._reported.add(d)
            self.diagnostics.append(d)

    def evaluator(self, env: Env) -> Evaluator:
        return Evaluator(lambda name, span: self.lookup_value(name, span, env))

    def value(self, e: ast.Expr, env: Env) -> Any:
        self.charge(self.size(e), e.span)
        return self.evaluator(env).value(e)

    def lookup_value(self, name: str, span: Span, env: Env) -> Any:
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
        return name in COMBINATORS or name == "identity" or name in env.module.blocks or ops.lookup(name) is not None

    # -- layers -------------------------------------------------------------------------
    def apply(self, e: ast.Expr, x: Tensor | None, ctx: Ctx) -> Tensor | None:
        if self.work >= self.max_work:  # charge(1), inlined: this is the elaborator's hottest path
            raise Aborted(self.out_of_work(e.span))
        self.work += 1
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
        if len(self.nodes) + expected > self.max_nodes:
            raise Aborted(
                error(
                    "E107",
                    f"this repeat expands to at least {expected:,} layers, beyond the limit of {self.max_nodes:,}",
                    e.span,
                    "lower the repeat count, or raise the limit with --max-nodes",
                )
            )
        if n > self.max_work - self.work:  # each iteration costs at least one step: refuse now, not later
            raise Aborted(self.out_of_work(e.span) if self.repeats else self.too_many_iterations(e, n))
        self.repeats.append(e)
        try:
            if e.var is None:  # the context stays as it is: no new one per iteration
                for _ in range(n):
                    x = self.apply(e.body, x, ctx)
                return x
            for i in range(n):
                self.charge(SCOPE_WORK + len(ctx.env.values), e.span)  # a new environment, copied
                env = Env(ctx.env.module, {**ctx.env.values, e.var: i}, ctx.env.x)
                x = self.apply(e.body, x, Ctx(env, ctx.names, ctx.trace, ctx.active))
        finally:
            self.repeats.pop()
        return x

    def too_many_iterations(self, e: ast.Repeat, n: int) -> Diagnostic:
        return error(
            "E107",
            f"this repeat runs {n:,} times, beyond the limit of {self.max_work:,} elaboration steps",
            e.span,
            "a repeat costs work even when it adds no layers; lower the repeat count",
        )

    def static_size(self, e: ast.Expr, env: Env) -> int:
        """static_size, cached per AST node: a repeat inside a repeat asks for it at every iteration.
        (One AST node lies in one lexical scope, so its blocks and bound names are always the same.)"""
        key = ("static", id(e))
        hit = self._sizes.get(key)
        if hit is None:
            size = static_size(e, env.module.blocks, frozenset(env.values), self._block_sizes)
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
        candidates = [*ops.surface_names(), *env.module.blocks, *COMBINATORS, "identity"]
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
        values: dict[str, Any] = {}
        params = [p.name for p in definition.params]
        ok = True
        positional = [a for a in args if a.name is None]
        if len(positional) > len(params):
            self.report(
                error(
                    "E102",
                    f"block `{name}` takes {len(params)} arguments, got {len(positional)}",
                    positional[len(params)].span,
                    f"its parameters: {', '.join(params) or 'none'}",
                )
            )
            ok = False
        for p, a in zip(params, positional):
            values[p] = Thunk(a.value, ctx.env)
        for a in args:
            if a.name is None:
                continue
            if a.name not in params:
                hint = did_you_mean(a.name, params) or f"its parameters: {', '.join(params) or 'none'}"
                self.report(error("E102", f"block `{name}` has no parameter `{a.name}`", a.span, hint))
                ok = False
            elif a.name in values:
                self.report(error("E102", f"parameter `{a.name}` given twice", a.span))
                ok = False
            else:
                values[a.name] = Thunk(a.value, ctx.env)
        inner_env = Env(module, values, x)
        for p in definition.params:
            if p.name not in values:
                if p.default is None:
                    self.report(
                        error(
                            "E102",
                            f"block `{name}` needs a value for `{p.name}`",
                            span,
                            f"call it as {name}({', '.join(params)})",
                        )
                    )
                    ok = False
                else:  # defaults may use earlier parameters and in_channels
                    values[p.name] = Thunk(p.default, inner_env)
        if not ok:
            return None
        scope_name = self.claim_or_fresh(ctx.names, label, name)
        if scope_name is None:
            return None
        frame = Frame(name, span, ctx.names.prefix + scope_name)
        inner = Ctx(inner_env, ctx.names.child(scope_name), (*ctx.trace, frame), (*ctx.active, name))
        return self.apply(definition.body, x, inner)

    def claim_or_fresh(self, names: NameScope, label, base: str) -> str | None:
        if label is None:
            return names.fresh(base)
        claimed = names.claim(*label)
        if isinstance(claimed, Diagnostic):
            self.report(claimed)
            return None
        return claimed

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
            self.report(error(err.code, err.message, span, hint, notes))
            return None
        return self.emit(op, {}, outs, shape, span, ctx, op, label)

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
        if not self.sizes_ok(op, attrs, x, shape, span):
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
        """Match a layer call's arguments to the op's signature; report every problem. `written` is the
        name as the spec spells it (`conv3x3`), for messages."""
        signature = ops.signature(surface)
        names = [p.name for p in signature]
        positional = [p for p in signature if p.positional]
        given: dict[str, Any] = {}
        ok = True
        spans: dict[str, Span] = {}
        pos_args = [a for a in args if a.name is None]
        if len(pos_args) > len(positional):
            took = ", ".join(p.name for p in positional) or "no positional arguments"
            self.report(
                error(
                    "E102",
                    f"`{written}` takes {len(positional)} positional argument(s) ({took}), got {len(pos_args)}",
                    pos_args[len(positional)].span,
                    f"name the others, e.g. {names[-1] if names else 'stride'}=...",
                )
            )
            ok = False
        pairs = [(p.name, a) for p, a in zip(positional, pos_args)]
        pairs += [(ops.ALIASES_KW.get(a.name, a.name), a) for a in args if a.name is not None]
        for pname, a in pairs:
            if pname in surface.preset:
                self.report(error("E102", f"`{pname}` is already given by the name `{written}`", a.span))
                ok = False
                continue
            if pname not in names:
                hint = did_you_mean(pname, names) or f"`{written}` takes: {', '.join(names) or 'no arguments'}"
                self.report(error("E102", f"`{written}` has no argument `{pname}`", a.span, hint))
                ok = False
                continue
            if pname in given:
                self.report(error("E102", f"argument `{pname}` given twice", a.span))
                ok = False
                continue
            try:
                given[pname] = self.value(a.value, env)
                spans[pname] = a.span
            except EvalError as err:
                self.report(err.diagnostic)
                ok = False
            except Poisoned:
                ok = False
        for p in signature:
            if p.default is ops.REQUIRED and p.name not in given and ok:
                self.report(
                    error(
                        "E102",
                        f"`{written}` needs `{p.name}`",
                        span,
                        f"e.g. {written}({p.name}=...)" if not p.positional else f"e.g. {written}(64)",
                    )
                )
                ok = False
        for pname, v in given.items():
            kind = next(p.kind for p in signature if p.name == pname)
            expected = ops.check_value(kind, v)
            if expected:
                code = "E104" if isinstance(v, (int, float)) and not isinstance(v, bool) else "E103"
                self.report(error(code, f"`{pname}` must be {expected}, got {describe(v)}", spans[pname]))
                ok = False
        return given if ok else None

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

    def sizes_ok(self, op: ops.OpDef, attrs: dict, x: Tensor, shape: Shape, span: Span) -> bool:
        if math.prod(shape) > MAX_ELEMENTS or (len(shape) == 3 and max(shape[1:]) > MAX_DIM):
            self.report(
                error(
                    "E207",
                    f"the output {format_shape(shape)} is too large ({math.prod(shape):,} elements per sample)",
                    span,
                )
            )
            return False
        for wname, spec in op.weights(Attrs.of(attrs), [x.shape]).items():
            if math.prod(spec.shape) > MAX_ELEMENTS:
                self.report(
                    error(
                        "E207",
                        f"the {wname} tensor {spec.shape} is too large ({math.prod(spec.shape):,} elements)",
                        span,
                        "flatten a smaller feature map, e.g. pool it first",
                    )
                )
                return False
        return True

    def emit(
        self, op: str, attrs: Attrs | dict, inputs: list[Tensor], shape: Shape, span: Span, ctx: Ctx, base: str, label
    ) -> Tensor | None:
        if len(self.nodes) >= self.max_nodes:
            raise Aborted(
                error(
                    "E107",
                    f"the network expands to more than {self.max_nodes:,} layers",
                    span,
                    "raise the limit with --max-nodes if this is intended",
                )
            )
        local = self.claim_or_fresh(ctx.names, label, base)
        if local is None:
            return None
        name = ctx.names.prefix + local
        attrs = attrs if isinstance(attrs, Attrs) else Attrs.of(attrs)
        names = (inputs[0].name,) if len(inputs) == 1 else tuple([t.name for t in inputs])
        self.nodes.append(Node(name, op, attrs, names, shape, span, ctx.trace))
        return Tensor(name, shape, span)


def static_size(e: ast.Expr, blocks: dict | None = None, bound: frozenset = frozenset(), memo=None) -> int:
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
            return 1 + sum(size(a.value) for a in e.args) if isinstance(e, ast.Call) else 1
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


def ast_size(e: Any) -> int:
    """AST nodes in an expression, found generically through the dataclass fields (spans excluded)."""
    if isinstance(e, (tuple, list)):
        return sum(ast_size(i) for i in e)
    if not dataclasses.is_dataclass(e) or isinstance(e, Span):
        return 0
    return 1 + sum(ast_size(getattr(e, f.name)) for f in dataclasses.fields(e))


def typed(v: Any) -> Any:
    """A value with its type, for cache keys: 1, 1.0 and True are equal in Python but not as arguments."""
    if isinstance(v, tuple):
        return (tuple, tuple(typed(i) for i in v))
    return (type(v), v)
