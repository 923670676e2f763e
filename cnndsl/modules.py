"""Modules: one parsed file with its constants and blocks, and the imports between files.

`import "blocks.cnn"` reads a file beside the importing one; `import resnet`
reads `cnndsl/stdlib/resnet.cnn`, shipped with the package. An import brings in
a module's blocks and constants; its input, body and expectations are not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ast, ops
from .diagnostics import CnnError, Diagnostic, Note, error
from .evaluate import BUILTINS, CONSTANTS, EvalError, Evaluator, Poisoned
from .source import Source, Span
from .syntax import parse_module

STDLIB = Path(__file__).parent / "stdlib"
RESERVED = ("residual", "add", "mul", "concat", "identity", "in_channels", "in_height", "in_width")


@dataclass
class ModuleScope:
    path: str
    module: ast.Module
    consts: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)  # name -> (BlockDef, defining ModuleScope)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings worth keeping


@dataclass
class Program:
    main: ModuleScope | None
    errors: list[Diagnostic]
    sources: dict[str, Source]


def stdlib_modules() -> list[str]:
    return sorted(p.stem for p in STDLIB.glob("*.cnn"))


def load_program(text: str, path: str) -> Program:
    loader = _Loader()
    main = loader.load_text(text, path, ())
    return Program(main, loader.errors, loader.sources)


class _Loader:
    def __init__(self):
        self.errors: list[Diagnostic] = []
        self.sources: dict[str, Source] = {}
        self.cache: dict[str, ModuleScope | None] = {}

    def load_text(self, text: str, path: str, stack: tuple[str, ...]) -> ModuleScope | None:
        self.sources[path] = Source(path, text)
        try:
            module = parse_module(text, path)
        except CnnError as e:
            self.errors.extend(e.diagnostics)
            return None
        scope = ModuleScope(path, module)
        for s in module.statements:
            if isinstance(s, ast.Import):
                self._import(scope, s, (*stack, path))
        evaluator = Evaluator(lambda name, span: _lookup_const(scope, name, span))
        for s in module.statements:
            if isinstance(s, ast.Let):
                if self._clash(scope, s.name, s.span):
                    continue
                try:
                    scope.consts[s.name] = evaluator.value(s.value)
                except EvalError as e:
                    self.errors.append(e.diagnostic)
                except Poisoned:  # pragma: no cover - no tensor at module level
                    pass
            elif isinstance(s, ast.BlockDef):
                if self._clash(scope, s.name, s.span):
                    continue
                self._check_params(s)
                scope.blocks[s.name] = (s, scope)
        self._check_recursion(scope)
        return scope

    def _clash(self, scope: ModuleScope, name: str, span: Span) -> bool:
        if name in scope.consts or name in scope.blocks:
            self.errors.append(error("E106", f"`{name}` is defined twice", span, "rename one of them"))
            return True
        if name in RESERVED or name in BUILTINS or name in CONSTANTS or ops.lookup(name) is not None:
            self.errors.append(
                error("E106", f"`{name}` is a built-in name and cannot be redefined", span, f"call it `my_{name}`")
            )
            return True
        return False

    def _check_params(self, block: ast.BlockDef) -> None:
        seen: set[str] = set()
        defaulted = False
        for p in block.params:
            if p.name in seen:
                self.errors.append(error("E106", f"parameter `{p.name}` is listed twice", p.span))
            seen.add(p.name)
            if p.default is None and defaulted:
                self.errors.append(
                    error("E102", f"parameter `{p.name}` without a default follows one with a default", p.span)
                )
            defaulted = defaulted or p.default is not None

    def _import(self, scope: ModuleScope, stmt: ast.Import, stack: tuple[str, ...]) -> None:
        if stmt.is_path:
            base = Path(scope.path).parent if not scope.path.startswith("<") else Path.cwd()
            target = base / stmt.target
        else:
            target = STDLIB / (stmt.target.replace(".", "/") + ".cnn")
        key = str(target)
        if key in stack:
            self.errors.append(
                error("E005", f"import cycle: {' -> '.join([*stack[stack.index(key) :], key])}", stmt.span)
            )
            return
        if key not in self.cache:
            try:
                text = target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                hint = None
                if not stmt.is_path:
                    from .diagnostics import did_you_mean

                    hint = (
                        did_you_mean(stmt.target, stdlib_modules())
                        or f"the standard library has: {', '.join(stdlib_modules())}"
                    )
                elif isinstance(e, FileNotFoundError):
                    hint = "import paths are relative to the importing file"
                self.errors.append(error("E004", f"cannot import `{stmt.target}`: {_reason(e)}", stmt.span, hint))
                self.cache[key] = None
                return
            display = key if stmt.is_path else f"<std>/{target.name}"
            self.cache[key] = self.load_text(text, display, (*stack, key))
        imported = self.cache[key]
        if imported is None:
            return
        for name, value in imported.consts.items():
            if name not in scope.consts:
                scope.consts[name] = value
        for name, entry in imported.blocks.items():
            if name in scope.blocks and scope.blocks[name] != entry:
                self.errors.append(error("E106", f"block `{name}` is imported twice from different modules", stmt.span))
                continue
            scope.blocks[name] = entry

    def _check_recursion(self, scope: ModuleScope) -> None:
        """Blocks may call blocks, never themselves, directly or through others."""
        local = {n: b for n, (b, m) in scope.blocks.items() if m is scope}
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for callee in sorted(_called_names(local[name].body) & set(local)):
                if callee in {p.name for p in local[name].params}:
                    continue
                if state.get(callee) == 1:
                    cycle = [*path[path.index(callee) :], callee] if callee in path else [name, callee]
                    span = _first_call_span(local[name].body, callee) or local[name].span
                    self.errors.append(
                        error(
                            "E105",
                            f"block `{name}` is recursive: {' -> '.join(cycle)}",
                            span,
                            "a block may call other blocks but never itself",
                            [Note(local[callee].span, f"`{callee}` is defined here")],
                        )
                    )
                elif state.get(callee) is None:
                    visit(callee, [*path, callee])
            state[name] = 2

        for name in sorted(local):
            if state.get(name) is None:
                visit(name, [name])


def _reason(e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, UnicodeDecodeError):
        return "the file is not UTF-8 text"
    if isinstance(e, IsADirectoryError):
        return "it is a directory"
    return e.strerror or type(e).__name__ if isinstance(e, OSError) else str(e)


def _lookup_const(scope: ModuleScope, name: str, span: Span):
    from .diagnostics import did_you_mean

    if name in scope.consts:
        return scope.consts[name]
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name in ("in_channels", "in_height", "in_width"):
        raise EvalError(error("E101", f"`{name}` is only known inside a chain of layers", span))
    raise EvalError(error("E101", f"unknown name `{name}`", span, did_you_mean(name, [*scope.consts, *CONSTANTS])))


def _walk(e):
    """Every expression inside e, without recursion (nesting is bounded, but stay iterative anyway)."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.Pipe):
            stack.extend(node.items)
        elif isinstance(node, ast.Call):
            stack.extend(a.value for a in node.args)
        elif isinstance(node, ast.Label):
            stack.append(node.expr)
        elif isinstance(node, ast.Cond):
            stack.extend((node.then, node.test, node.orelse))
        elif isinstance(node, ast.Chain):
            stack.extend((node.first, *node.rest))
        elif isinstance(node, ast.Unary):
            stack.append(node.operand)
        elif isinstance(node, ast.Power):
            stack.extend((node.base, node.exponent))
        elif isinstance(node, (ast.TupleExpr, ast.ListExpr)):
            stack.extend(node.items)
        elif isinstance(node, ast.Repeat):
            stack.extend((node.body, node.count))


def _called_names(e) -> set[str]:
    return {n.func if isinstance(n, ast.Call) else n.id for n in _walk(e) if isinstance(n, (ast.Call, ast.Name))}


def _first_call_span(e, name: str) -> Span | None:
    for n in _walk(e):
        if isinstance(n, ast.Call) and n.func == name:
            return n.func_span
        if isinstance(n, ast.Name) and n.id == name:
            return n.span
    return None
