"""Modules: one parsed file with its constants and blocks, and the imports between files.

`import "blocks.cnn"` reads a file beside the importing one; `import resnet`
reads `cnndsl/stdlib/resnet.cnn`, shipped with the package. An import brings in
a module's blocks and constants; its input, body and expectations are not used.

The import rule (docs/security.md): a path import is a relative path ending in `.cnn`,
without control characters; resolved (symlinks and `..` included) it must stay inside
the folder of the top-level spec; it must be a regular file no larger than a top-level
spec. Modules are cached and cycles detected by resolved path, so two spellings of one
file are one module. A file that fails to parse through an import is never quoted: its
diagnostic says where, not what (the text could be anything the user can read).
"""

from __future__ import annotations

import dataclasses
import keyword
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast, ops
from .diagnostics import CnnError, Diagnostic, Note, did_you_mean, error
from .evaluate import BUILTINS, CONSTANTS, EvalError, Evaluator, Poisoned
from .files import FileProblem, read_text, strip_bom
from .limits import MAX_NODES, MAX_SOURCE_BYTES, work_budget
from .source import Source, Span
from .syntax import parse_module

STDLIB = Path(__file__).parent / "stdlib"
RESERVED = ("residual", *ops.MERGES, "identity", "in_channels", "in_height", "in_width")

# Attributes of torch.nn.Module (torch 2.x, public ones; every name starting with `_` is refused
# anyway). A label becomes a submodule attribute in the torch backend, so these names would
# shadow the module's own methods; every backend refuses them, so a spec that compiles for one
# compiles for all. tests/test_hostile_input.py checks this list against the installed torch.
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type xpu zero_grad""".split()
)


def unusable_name(name: str) -> str | None:
    """Why `name` cannot name a layer or block in generated code, or None if it can."""
    if keyword.iskeyword(name):
        return "a Python keyword"
    if name.startswith("_"):
        return "a name starting with `_` (reserved for generated code)"
    if name in MODULE_ATTRIBUTES:
        return "an attribute of torch's nn.Module"
    return None


def quotable(path: str) -> bool:
    """May diagnostics quote lines of this file? Only of specs: `.cnn` files and text given directly."""
    return path.endswith(".cnn") or path.startswith("<") or path == "-"


@dataclass
class ModuleScope:
    path: str
    module: ast.Module
    consts: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)  # name -> (BlockDef, defining ModuleScope)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings worth keeping
    origins: dict = field(default_factory=dict)  # imported name -> the ast.Import that brought it


@dataclass
class Program:
    main: ModuleScope | None
    errors: list[Diagnostic]
    sources: dict[str, Source]


def stdlib_modules() -> list[str]:
    return sorted(p.stem for p in STDLIB.glob("*.cnn"))


def load_program(text: str, path: str) -> Program:
    loader = _Loader()
    if path.startswith("<") or path == "-":  # text given directly: imports are relative to the working folder
        key, root = path, os.path.realpath(os.getcwd())
    else:
        key = os.path.realpath(path)
        root = os.path.dirname(key)
    main = loader.load_text(strip_bom(text), path, key, root, (), None)
    return Program(main, loader.errors, loader.sources)


class _Loader:
    def __init__(self):
        self.errors: list[Diagnostic] = []
        self.sources: dict[str, Source] = {}
        self.cache: dict[str, ModuleScope | None] = {}  # resolved path -> module
        self.displays: dict[str, str] = {}  # resolved path -> the path as first written

    def load_text(
        self, text: str, path: str, key: str, root: str, stack: tuple[str, ...], via: ast.Import | None
    ) -> ModuleScope | None:
        """Parse and load one module. `key` is its resolved path, `root` the folder its path imports
        must stay in, `via` the import statement that reached it (None for the top-level spec)."""
        self.displays[key] = path
        try:
            module = parse_module(text, path)
        except CnnError as e:
            if via is not None or not quotable(path):
                self.errors.append(not_a_spec(path, e.diagnostics[0], via))
            else:
                self.sources[path] = Source(path, text)
                self.errors.extend(e.diagnostics)
            return None
        # Only now, once it parsed as a spec, may diagnostics quote the file's lines.
        self.sources[path] = Source(path, text)
        scope = ModuleScope(path, module)
        self._check_names(module)
        for s in module.statements:
            if isinstance(s, ast.Import):
                self._import(scope, s, (*stack, key), root)
        evaluator = Evaluator(lambda name, span: _lookup_const(scope, name, span), self._charge)
        for s in module.statements:
            if isinstance(s, ast.Let):
                if self._clash(scope, s.name, s.span):
                    continue
                try:
                    scope.consts[s.name] = evaluator.value(s.value)
                except EvalError as e:
                    d = e.diagnostic
                    if d.code == "E103" and "found a layer" in d.message:  # `let trunk = conv3x3(16) -> relu`
                        d = dataclasses.replace(
                            d,
                            hint=f"`let` names a value; to name the tensor a chain computes write "
                            f"`tensor {s.name} = ...`, to reuse the layers define `block {s.name}() {{ ... }}`",
                        )
                    self.errors.append(d)
                except Poisoned:  # pragma: no cover - no tensor at module level
                    pass
            elif isinstance(s, ast.BlockDef):
                if self._clash(scope, s.name, s.span):
                    continue
                self._check_params(s)
                scope.blocks[s.name] = (s, scope)
        self._check_recursion(scope)
        return scope

    def _charge(self, cost: int, span: Span) -> None:
        """Work for computed lists in constants (`[f(i) for i in range(n)]`), bounded like elaboration."""
        self.work = getattr(self, "work", 0) + cost
        if self.work > work_budget(MAX_NODES):
            raise EvalError(
                error(
                    "E107",
                    f"the constants take more than {work_budget(MAX_NODES):,} steps to compute",
                    span,
                    "compute shorter lists",
                )
            )

    def _check_names(self, module: ast.Module) -> None:
        """Names the front end refuses so that every backend accepts what it accepts (E112), and
        names a spec may not rebind (E106): `in_channels` and the like are set by the compiler."""
        roots = []
        for s in module.statements:
            if isinstance(s, ast.BlockDef):
                why = unusable_name(s.name)
                if why:
                    self.errors.append(
                        error("E112", f"`{s.name}` cannot name a block: it is {why}", s.span, f"call it `my_{s.name}`")
                    )
                roots += [s.body, *(p.default for p in s.params if p.default is not None)]
            elif isinstance(s, (ast.Let, ast.Body, ast.TensorDef)):
                roots.append(s.value if isinstance(s, ast.Let) else s.expr)
        for r in roots:
            for node in _walk(r):
                if isinstance(node, ast.Label):
                    why = unusable_name(node.name)
                    if why:
                        self.errors.append(
                            error(
                                "E112",
                                f"`{node.name}` cannot label a layer: it is {why}",
                                node.span,
                                f"label it differently, e.g. `as my_{node.name.lstrip('_')}`",
                            )
                        )
                elif isinstance(node, ast.Repeat) and node.var in RESERVED:
                    self.errors.append(
                        error(
                            "E106",
                            f"`{node.var}` is a built-in name and cannot be a repeat index",
                            node.span,
                            "call the index `i`",
                        )
                    )

    def _clash(self, scope: ModuleScope, name: str, span: Span) -> bool:
        if name in scope.consts or name in scope.blocks:
            via = scope.origins.get(name)
            if via is None:
                self.errors.append(error("E106", f"`{name}` is defined twice", span, "rename one of them"))
                return True
            target = f'"{via.target}"' if via.is_path else via.target
            hint = f"rename yours, or import only what you use, e.g. `from {target} import ...`"
            if via.names is not None:
                hint = f"rename yours, or leave `{name}` out of the import"
            self.errors.append(
                error(
                    "E106",
                    f"`{name}` is already defined by `{'import' if via.names is None else 'from'} {target}`",
                    span,
                    hint,
                    [Note(via.span, f"`{name}` is imported here")],
                )
            )
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
            if p.name in RESERVED:
                self.errors.append(
                    error(
                        "E106",
                        f"`{p.name}` is a built-in name and cannot be a parameter",
                        p.span,
                        f"call it `{p.name}_`",
                    )
                )
            seen.add(p.name)
            if p.default is None and defaulted:
                self.errors.append(
                    error("E102", f"parameter `{p.name}` without a default follows one with a default", p.span)
                )
            defaulted = defaulted or p.default is not None

    def _import(self, scope: ModuleScope, stmt: ast.Import, stack: tuple[str, ...], root: str) -> None:
        """`stack` holds the resolved paths of the modules being loaded, the importing one last."""
        if stmt.is_path:
            problem = _bad_import_path(stmt.target)
            if problem:
                self.errors.append(
                    error("E004", f"cannot import `{_shown(stmt.target)}`: {problem[0]}", stmt.span, problem[1])
                )
                return
            base = Path(scope.path).parent if not scope.path.startswith("<") and scope.path != "-" else Path.cwd()
            spelled = base / stmt.target
            key = os.path.realpath(spelled)
            if os.path.commonpath([key, root]) != root:
                self.errors.append(
                    error(
                        "E004",
                        f"cannot import `{stmt.target}`: it is outside the spec's folder",
                        stmt.span,
                        f"imports must stay inside {root} (links are followed before this check)",
                    )
                )
                return
            display, child_root = str(spelled), root
        else:
            spelled = STDLIB / (stmt.target.replace(".", "/") + ".cnn")
            key = os.path.realpath(spelled)
            display, child_root = f"<std>/{spelled.name}", os.path.realpath(STDLIB)
        if key in stack:
            chain = [self.displays.get(k, k) for k in (*stack[stack.index(key) :], key)]
            self.errors.append(error("E005", f"import cycle: {' -> '.join(chain)}", stmt.span))
            return
        if key not in self.cache:
            try:
                text = read_text(key, MAX_SOURCE_BYTES)
            except FileProblem as e:
                hint = e.hint
                if not stmt.is_path:
                    hint = (
                        did_you_mean(stmt.target, stdlib_modules())
                        or f"the standard library has: {', '.join(stdlib_modules())}"
                    )
                elif e.message == "no such file":
                    hint = "import paths are relative to the importing file"
                code = "E104" if e.code == "E104" else "E004"
                self.errors.append(error(code, f"cannot import `{stmt.target}`: {e.message}", stmt.span, hint))
                self.cache[key] = None
                return
            self.cache[key] = self.load_text(text, display, key, child_root, stack, stmt)
        imported = self.cache[key]
        if imported is None:
            return
        consts, blocks = imported.consts, imported.blocks
        if stmt.names is not None:  # `from M import a, b`: only these
            wanted = set()
            for n in stmt.names:
                if n.id in consts or n.id in blocks:
                    wanted.add(n.id)
                    continue
                offered = [*blocks, *consts]
                hint = (
                    did_you_mean(n.id, offered) or f"`{stmt.target}` defines: {', '.join(sorted(offered)) or 'nothing'}"
                )
                self.errors.append(error("E101", f"`{stmt.target}` has no block or constant `{n.id}`", n.span, hint))
            consts = {k: v for k, v in consts.items() if k in wanted}
            blocks = {k: v for k, v in blocks.items() if k in wanted}
        for name, value in consts.items():
            if name not in scope.consts:
                scope.consts[name] = value
                scope.origins[name] = stmt
        for name, entry in blocks.items():
            if name in scope.blocks and scope.blocks[name] != entry:
                self.errors.append(error("E106", f"block `{name}` is imported twice from different modules", stmt.span))
                continue
            scope.blocks[name] = entry
            scope.origins.setdefault(name, stmt)

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


def _bad_import_path(target: str) -> tuple[str, str] | None:
    """(why, hint) if an import path breaks the rule in the module docstring, else None."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return "the path contains a control character", "write the file name plainly"
    if os.path.isabs(target) or target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":"):
        return "absolute paths are not allowed", "import paths are relative to the importing file"
    if not target.endswith(".cnn"):
        return "only `.cnn` specs can be imported", 'name the file `x.cnn` and import "x.cnn"'
    return None


def _shown(target: str) -> str:
    """The import path with control characters escaped, so a message never carries raw bytes."""
    return "".join(ch if ord(ch) >= 32 and ord(ch) != 127 else f"\\x{ord(ch):02x}" for ch in target)


def not_a_spec(path: str, first: Diagnostic, via: ast.Import | None) -> Diagnostic:
    """A parse failure reported without a word of the file: line and column, not text.

    The message of a syntax error names the token it met, and the printer quotes the line;
    for a file that may hold anything (an imported secret, /proc/self/environ) neither may appear.
    """
    where = f"line {first.span.line}, column {first.span.column}"
    message = f"`{path}` is not a valid cnndsl spec (error {first.code} at {where})"
    hint = f"run `cnndsl check {path}` on its own to see the error" if path.endswith(".cnn") else "specs end in `.cnn`"
    if via is not None:
        return error("E001", message, via.span, hint)
    return error(
        "E001", message, Span(path, first.span.line, first.span.column, first.span.line, first.span.column + 1), hint
    )


def _lookup_const(scope: ModuleScope, name: str, span: Span):
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
