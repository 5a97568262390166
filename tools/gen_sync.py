"""Generate the blocking facade (``sync/handles.py``, ``sync/namespaces.py``) from the async one.

In the style of unasync / httpcore: the async modules are the source of truth. Every public
method of the listed async classes gets a blocking twin with the same signature and
docstring, rewritten token by token (``AsyncLLM`` -> ``LLM``, ``async with`` -> ``with``,
``AbstractAsyncContextManager[X]`` -> ``X``...). The body is chosen by kind:

* a coroutine method blocks on the portal: ``self._portal().run(self._async.name, ...)``;
  with callback parameters (annotated ``Callable``) it uses ``run_relayed`` so that the
  callbacks run in the calling thread;
* a return type found in ``RETURN_WRAPS`` (a handle) is wrapped into its blocking class;
* a property reads the async object's property;
* the handful of methods that need more (streams, predictions through their stream) have
  a rule in ``METHOD_RULES``, by method name.

What is not generated (the wrappers' constructors, ``__repr__``, the portal accessor) lives
in ``sync/_base.py``.

    python tools/gen_sync.py          # rewrite the generated modules
    python tools/gen_sync.py --check  # exit 1 if one is stale or a rule is unused

Generated code goes through ``ruff format`` and ``ruff check --fix`` (import sorting and
pruning), so the files stay lint-clean; ruff must be installed (the ``lint`` tox env has it).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "lmstudio_sdk"
RUFF_CONFIG = ROOT / "pyproject.toml"

# --- token rules (annotations and docstrings) -------------------------------------------

NAME_MAP = {
    "AsyncModelHandle": "ModelHandle",
    "AsyncLLM": "LLM",
    "AsyncEmbeddingModel": "EmbeddingModel",
    "AsyncClient": "Client",
}
"""Async class names and their blocking twins (in annotations and docstrings)."""

UNWRAPPED_GENERICS = {"AbstractAsyncContextManager", "StreamScope"}
"""``X[T]`` becomes ``T``: the blocking stream classes are context managers themselves."""

DOC_TOKENS = [
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    *((rf"\b{name}\b", sync) for name, sync in NAME_MAP.items()),
]
"""Docstring rewrites, in order."""


def rewrite_doc(text: str) -> str:
    """A docstring of the async API as the blocking API's."""
    for pattern, replacement in DOC_TOKENS:
        text = re.sub(pattern, replacement, text)
    return text


class _Annotations(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(NAME_MAP.get(node.id, node.id), node.ctx), node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id in UNWRAPPED_GENERICS:
            return self.visit(node.slice)
        self.generic_visit(node)
        return node


def rewrite_annotation(node: ast.expr | None) -> ast.expr | None:
    """An annotation of the async API as the blocking API's."""
    if node is None:
        return None
    rewritten = _Annotations().visit(ast.parse(ast.unparse(node), mode="eval").body)
    assert isinstance(rewritten, ast.expr)
    return rewritten


# --- method rules -------------------------------------------------------------------------


@dataclass
class Method:
    """What a rule sees of one async method."""

    node: ast.FunctionDef | ast.AsyncFunctionDef

    @property
    def name(self) -> str:
        return self.node.name

    def params(self) -> list[ast.arg]:
        args = self.node.args
        return [*args.posonlyargs, *args.args, *args.kwonlyargs][1:]  # without self

    def callbacks(self) -> list[str]:
        """Parameters whose annotation is a ``Callable``: they run in the calling thread."""
        return [
            p.arg
            for p in self.params()
            if p.annotation is not None
            and re.search(r"Callable\[|Callback\b", ast.unparse(p.annotation))
        ]

    def forward(self, drop: tuple[str, ...] = (), **replace: str) -> str:
        """The arguments passing this method's parameters on (``replace`` renames values)."""
        args = self.node.args
        parts: list[str] = []
        for p in [*args.posonlyargs, *args.args][1:]:
            parts.append(replace.get(p.arg, p.arg))
        if args.vararg:
            parts.append(f"*{args.vararg.arg}")
        for p in args.kwonlyargs:
            if p.arg not in drop:
                parts.append(f"{p.arg}={replace.get(p.arg, p.arg)}")
        if args.kwarg:
            parts.append(f"**{replace.get(args.kwarg.arg, args.kwarg.arg)}")
        return ", ".join(parts)

    def relayed(self) -> dict[str, str]:
        return {name: f"relay.optional({name})" for name in self.callbacks()}


def _call(method: Method) -> str:
    """Block on the async method (relaying callbacks to this thread, if it has any)."""
    if method.callbacks():
        return (
            f"self._portal().run_relayed(lambda relay: "
            f"self._async.{method.name}({method.forward(**method.relayed())}))"
        )
    arguments = method.forward()
    return f"self._portal().run(self._async.{method.name}{', ' if arguments else ''}{arguments})"


def _prediction_stream(method: Method) -> str:
    # The stream collects events in the loop and replays them, callbacks included, in the
    # calling thread; the final message comes through ``record``.
    assert method.node.args.kwarg is not None, f"{method.name}() takes no **keywords"
    keywords = method.node.args.kwarg.arg
    forward = method.forward(**{keywords: "others"})
    return f"""
callbacks, others = split_callbacks({keywords})
return PredictionStream(
    self._client,
    lambda record: self._async.{method.name}({forward}, on_message=record),
    PredictionCallbacks(**callbacks),
)
"""


def _prediction_through_stream(method: Method) -> str:
    # respond()/complete() are their stream drained: the same callbacks, in this thread.
    return f"""
with self.{method.name}_stream({method.forward()}) as stream:
    for _ in stream:
        pass
return stream.result()
"""


METHOD_RULES: dict[str, Callable[[Method], str]] = {
    "respond_stream": _prediction_stream,
    "complete_stream": _prediction_stream,
    "respond": _prediction_through_stream,
    "complete": _prediction_through_stream,
    "load_stream": lambda m: (
        f"return LoadStream(self._client, lambda: self._async.load_stream({m.forward()}), "
        "self._wrap)"
    ),
    "stream_logs": lambda m: "return LogStream(self._client, self._async.stream_logs)",
}
"""Bodies of the methods a generic body does not fit, by method name."""

RETURN_WRAPS = {
    "H": "self._wrap({call})",
    "list[H]": "[self._wrap(handle) for handle in {call}]",
}
"""Return types the blocking twin wraps (async handles become blocking handles)."""


def method_body(method: Method, used_rules: set[str]) -> str:
    """The body of the blocking twin of ``method``."""
    rule = METHOD_RULES.get(method.name)
    if rule is not None:
        used_rules.add(method.name)
        return rule(method)
    if not isinstance(method.node, ast.AsyncFunctionDef):
        raise SystemExit(
            f"gen_sync: {method.name}() is not a coroutine and has no rule in METHOD_RULES"
        )
    returns = ast.unparse(method.node.returns) if method.node.returns else "None"
    call = _call(method)
    if returns == "None":
        return call
    wrap = RETURN_WRAPS.get(returns)
    if wrap is not None:
        used_rules.add(f"return {returns}")
        return "return " + wrap.format(call=call)
    return "return " + call


# --- classes and modules -------------------------------------------------------------------


@dataclass
class ClassRule:
    """How one async class becomes a blocking one."""

    name: str
    bases: str
    extra: str = ""
    """Class body lines the async class does not have (kept before the methods)."""


@dataclass
class Target:
    """One generated module."""

    source: str
    output: str
    header: str
    classes: dict[str, ClassRule]
    imports: dict[str, str] = field(default_factory=dict)


HANDLES_HEADER = '''"""Blocking handles to loaded model instances (``client.llm.model(...)`` returns these).

A handle wraps the async handle of the same instance and blocks on its methods, which have
the same signatures and documentation; like it, it holds no resources: dropping it does not
unload the model, and it stays usable for as long as its client is open. Callbacks run in
the calling thread; Ctrl-C during a call cancels it on the server (then
``KeyboardInterrupt`` goes on).

Generated by ``tools/gen_sync.py`` from ``lmstudio_sdk/_async/handles.py``: do not edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, overload

from .._sentinel import DEFAULT
from .._async._keywords import split_callbacks
from ._base import HandleBase
from .streams import PredictionCallbacks, PredictionStream

__all__ = ["LLM", "EmbeddingModel", "ModelHandle"]
'''

NAMESPACES_HEADER = '''"""The namespace facades of :class:`~lmstudio_sdk.Client`: ``client.system``, ``client.llm``,
``client.embedding``, ``client.files``, ``client.repository`` and ``client.diagnostics``.

Each method blocks on the async method of the same name, with the same signature and
documentation. Streams are context managers yielding iterators (``with
client.llm.load_stream(key) as load: for progress in load: ...``); leaving the block early
cancels the work on the server. Callbacks (``on_progress``) run in the calling thread.

Generated by ``tools/gen_sync.py`` from ``lmstudio_sdk/_async/namespaces.py``: do not edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .._async import namespaces as aio
from .._sentinel import DEFAULT
from ._base import NamespaceBase
from .handles import LLM, EmbeddingModel, ModelHandle
from .streams import LoadStream, LogStream

__all__ = [
    "DiagnosticsNamespace",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLMNamespace",
    "RepositoryNamespace",
    "SystemNamespace",
]

H = TypeVar("H", bound=ModelHandle)
'''

TARGETS = [
    Target(
        source="_async/handles.py",
        output="sync/handles.py",
        header=HANDLES_HEADER,
        classes={
            "AsyncModelHandle": ClassRule("ModelHandle", "HandleBase", "_async: AsyncModelHandle"),
            "AsyncLLM": ClassRule("LLM", "ModelHandle", "_async: AsyncLLM"),
            "AsyncEmbeddingModel": ClassRule(
                "EmbeddingModel", "ModelHandle", "_async: AsyncEmbeddingModel"
            ),
        },
        imports={
            "AsyncModelHandle": "lmstudio_sdk._async.handles",
            "AsyncLLM": "lmstudio_sdk._async.handles",
            "AsyncEmbeddingModel": "lmstudio_sdk._async.handles",
        },
    ),
    Target(
        source="_async/namespaces.py",
        output="sync/namespaces.py",
        header=NAMESPACES_HEADER,
        classes={
            "SystemNamespace": ClassRule("SystemNamespace", "NamespaceBase[aio.SystemNamespace]"),
            "_ModelNamespace": ClassRule(
                "_ModelNamespace",
                "NamespaceBase[aio._ModelNamespace[Any]], Generic[H]",
                """
_handle_class: type[ModelHandle] = ModelHandle

def _wrap(self, handle: AsyncModelHandle) -> H:
    return cast(H, self._handle_class(self._client, handle))
""",
            ),
            "LLMNamespace": ClassRule(
                "LLMNamespace", "_ModelNamespace[LLM]", "_handle_class = LLM"
            ),
            "EmbeddingNamespace": ClassRule(
                "EmbeddingNamespace",
                "_ModelNamespace[EmbeddingModel]",
                "_handle_class = EmbeddingModel",
            ),
            "FilesNamespace": ClassRule("FilesNamespace", "NamespaceBase[aio.FilesNamespace]"),
            "RepositoryNamespace": ClassRule(
                "RepositoryNamespace", "NamespaceBase[aio.RepositoryNamespace]"
            ),
            "DiagnosticsNamespace": ClassRule(
                "DiagnosticsNamespace", "NamespaceBase[aio.DiagnosticsNamespace]"
            ),
        },
        imports={"AsyncModelHandle": "lmstudio_sdk._async.handles"},
    ),
]


def _import_map(tree: ast.Module, module: str) -> dict[str, str]:
    """``name -> import line`` of every name the async module imports (absolute)."""
    found: dict[str, str] = {}
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                local = alias.asname or alias.name
                found[local] = f"from {source} import {alias.name}" + (
                    f" as {alias.asname}" if alias.asname else ""
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name] = f"import {alias.name}"
    return found


def _names(node: ast.AST) -> set[str]:
    """Names ``node`` reads that it does not bind itself (parameters, targets)."""
    bound = {n.arg for n in ast.walk(node) if isinstance(n, ast.arg)}
    bound |= {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    }
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - bound


def _is_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list)


def _is_property(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _twin(node: ast.FunctionDef | ast.AsyncFunctionDef, used_rules: set[str]) -> ast.FunctionDef:
    """The blocking twin of one async method (signature and docstring rewritten)."""
    args = ast.parse(f"def f({ast.unparse(node.args)}): pass").body[0].args  # type: ignore[attr-defined]
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = rewrite_annotation(arg.annotation)
    doc = ast.get_docstring(node, clean=False)
    body: list[ast.stmt] = []
    if doc is not None:
        body.append(ast.Expr(ast.Constant(rewrite_doc(doc))))
    if _is_overload(node):
        body = [ast.Expr(ast.Constant(...))]
    elif _is_property(node):
        body += ast.parse(f"return self._async.{node.name}").body
    else:
        body += ast.parse(method_body(Method(node), used_rules).strip()).body
    decorators = [d for d in node.decorator_list if _is_overload(node) or _is_property(node)]
    return ast.FunctionDef(
        name=node.name,
        args=args,
        body=body,
        decorator_list=decorators,
        returns=rewrite_annotation(node.returns),
        type_comment=None,
        lineno=0,
        **({"type_params": []} if sys.version_info >= (3, 12) else {}),
    )


def _class_source(
    node: ast.ClassDef, rule: ClassRule, used_rules: set[str]
) -> tuple[str, set[str]]:
    """The blocking class of one async class, and the names its source uses."""
    header = ast.parse(f"class {rule.name}({rule.bases}): pass").body[0]
    assert isinstance(header, ast.ClassDef)
    body: list[ast.stmt] = []
    doc = ast.get_docstring(node, clean=False)
    if doc is not None:
        body.append(ast.Expr(ast.Constant(rewrite_doc(doc))))
    # Public class attributes (``domain: ClassVar[str] = "llm"``) carry over as written.
    body += [
        stmt
        for stmt in node.body
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(stmt.target, ast.Name)
        and not stmt.target.id.startswith("_")
    ]
    body += ast.parse(rule.extra.strip()).body
    body += [
        _twin(stmt, used_rules)
        for stmt in node.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not stmt.name.startswith("_")
    ]
    header.body = body or [ast.Pass()]
    return ast.unparse(header), _names(header)


def generate(target: Target, used_rules: set[str]) -> str:
    """The source of one generated module (before ruff)."""
    source_path = PACKAGE / target.source
    tree = ast.parse(source_path.read_text())
    module = "lmstudio_sdk." + target.source.removesuffix(".py").replace("/", ".")
    imports = _import_map(tree, module)
    for node in tree.body:  # the async module's own aliases (``ProgressCallback = ...``)
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            imports.setdefault(name, f"from {module} import {name}")
    for name, where in target.imports.items():
        imports[name] = f"from {where} import {name}"
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    chunks: list[str] = []
    used: set[str] = set()
    for async_name, rule in target.classes.items():
        if async_name not in classes:
            raise SystemExit(f"gen_sync: {target.source} has no class {async_name}")
        text, names = _class_source(classes[async_name], rule, used_rules)
        used |= names
        chunks.append(text)
    header_tree = ast.parse(target.header)
    defined = set(NAME_MAP.values()) | {r.name for r in target.classes.values()}
    defined |= _import_map(header_tree, "lmstudio_sdk.sync.x").keys()
    defined |= {
        t.id
        for n in header_tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    builtin_names = set(dir(builtins))
    free = used - defined - builtin_names
    wanted = sorted(imports[name] for name in free if name in imports)
    missing = sorted(name for name in free if name not in imports)
    if missing:
        raise SystemExit(f"gen_sync: {target.output}: no import known for {', '.join(missing)}")
    type_only = "\n".join("    " + _relative(line) for line in wanted)
    header = target.header.rstrip() + "\n"
    if type_only:
        header = header.replace("\n__all__", f"\nif TYPE_CHECKING:\n{type_only}\n\n__all__", 1)
    return header + "\n\n" + "\n\n\n".join(chunks) + "\n"


def _relative(line: str) -> str:
    """``from lmstudio_sdk.x import y`` as seen from ``lmstudio_sdk.sync``."""
    return re.sub(r"^from lmstudio_sdk\.", "from ..", line)


def _ruff(text: str, filename: str) -> str:
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    for args in (
        ["check", "--fix", "--select", "I,F401", "--quiet", "--stdin-filename", filename, "-"],
        ["format", "--quiet", "--stdin-filename", filename, "-"],
    ):
        run = subprocess.run(
            [*command, *args, "--config", str(RUFF_CONFIG)],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise SystemExit(f"gen_sync: ruff {args[0]} failed on {filename}:\n{run.stderr}")
        text = run.stdout
    return text


def all_rules() -> set[str]:
    return set(METHOD_RULES) | {f"return {r}" for r in RETURN_WRAPS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    options = parser.parse_args(argv)
    used_rules: set[str] = set()
    stale: list[str] = []
    for target in TARGETS:
        path = PACKAGE / target.output
        text = _ruff(generate(target, used_rules), str(path))
        current = path.read_text() if path.exists() else ""
        if text == current:
            continue
        if options.check:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{target.output} (committed)",
                f"{target.output} (generated from {target.source})",
            )
            sys.stderr.write("".join(diff))
            stale.append(target.output)
        else:
            path.write_text(text)
            print(f"gen_sync: wrote {path.relative_to(PACKAGE.parent.parent)}")
    unused = sorted(all_rules() - used_rules)
    if unused:
        print(
            f"gen_sync: rules no async method uses any more: {', '.join(unused)}", file=sys.stderr
        )
    if stale:
        print(
            f"gen_sync: stale (run `python tools/gen_sync.py`): {', '.join(stale)}",
            file=sys.stderr,
        )
    return 1 if stale or unused else 0


if __name__ == "__main__":
    sys.exit(main())
