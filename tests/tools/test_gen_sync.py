"""tools/gen_sync.py: how an async method becomes its blocking twin, and what --check says."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_sync", ROOT / "tools" / "gen_sync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_sync"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def method(source: str) -> Any:
    node = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    return node


def test_a_coroutine_blocks_on_the_portal(gen: ModuleType) -> None:
    node = method(
        """
        async def unload(self, identifier: str, *, timeout: float | None = None) -> None:
            ...
        """
    )
    body = gen.method_body(gen.Method(node), set())
    assert body == "self._portal().run(self._async.unload, identifier, timeout=timeout)"


def test_callbacks_are_relayed_to_the_calling_thread(gen: ModuleType) -> None:
    node = method(
        """
        async def download(self, option: str, *, on_progress: Callable[[float], Any] | None = None) -> str:
            ...
        """
    )
    body = gen.method_body(gen.Method(node), set())
    assert body == (
        "return self._portal().run_relayed(lambda relay: self._async.download("
        "option, on_progress=relay.optional(on_progress)))"
    )


def test_a_returned_async_handle_is_wrapped(gen: ModuleType) -> None:
    used: set[str] = set()
    node = method("async def list_loaded(self) -> list[H]: ...")
    assert gen.method_body(gen.Method(node), used) == (
        "return [self._wrap(handle) for handle in self._portal().run(self._async.list_loaded)]"
    )
    assert used == {"return list[H]"}


def test_annotations_and_docstrings_read_as_the_blocking_api(gen: ModuleType) -> None:
    annotation = ast.parse("AbstractAsyncContextManager[AsyncLLM] | None", mode="eval").body
    assert ast.unparse(gen.rewrite_annotation(annotation)) == "LLM | None"
    assert gen.rewrite_doc("``async with model.respond_stream(c) as s: async for e in s``") == (
        "``with model.respond_stream(c) as s: for e in s``"
    )
    assert gen.rewrite_doc("then ``await model.unload()`` on the AsyncLLM") == (
        "then ``model.unload()`` on the LLM"
    )


def test_a_new_kind_of_method_without_a_rule_is_refused_clearly(gen: ModuleType) -> None:
    node = method("def watch(self) -> AbstractAsyncContextManager[Watch]: ...")
    with pytest.raises(SystemExit, match=r"watch\(\) is not a coroutine and has no rule"):
        gen.method_body(gen.Method(node), set())


@pytest.mark.skipif(shutil.which("ruff") is None, reason="gen_sync formats with ruff")
def test_check_reports_a_stale_facade_with_its_diff(
    gen: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    package = tmp_path / "lmstudio_sdk"
    shutil.copytree(ROOT / "src" / "lmstudio_sdk", package)
    monkeypatch.setattr(gen, "PACKAGE", package)
    assert gen.main(["--check"]) == 0
    handles = package / "sync" / "handles.py"
    handles.write_text(handles.read_text().replace("Unload this instance", "Unload it"))
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert '-        """Unload it from the server."""' in err
    assert "stale (run `python tools/gen_sync.py`): sync/handles.py" in err
