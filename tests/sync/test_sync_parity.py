"""The blocking facade mirrors the async API: every public method and property of an async
handle or namespace has a blocking twin with the same signature, documentation and
overloads (``tools/gen_sync.py`` generates them; this is what a user comparing the two sees).
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from typing import Any

import pytest

from lmstudio_sdk import sync
from lmstudio_sdk._async import handles as async_handles
from lmstudio_sdk._async import namespaces as async_namespaces
from lmstudio_sdk.sync import handles as sync_handles
from lmstudio_sdk.sync import namespaces as sync_namespaces

PAIRS = [
    (async_handles.AsyncModelHandle, sync_handles.ModelHandle),
    (async_handles.AsyncLLM, sync.LLM),
    (async_handles.AsyncEmbeddingModel, sync.EmbeddingModel),
    (async_namespaces.SystemNamespace, sync.SystemNamespace),
    (async_namespaces._ModelNamespace, sync_namespaces._ModelNamespace),
    (async_namespaces.LLMNamespace, sync.LLMNamespace),
    (async_namespaces.EmbeddingNamespace, sync.EmbeddingNamespace),
    (async_namespaces.FilesNamespace, sync.FilesNamespace),
    (async_namespaces.RepositoryNamespace, sync.RepositoryNamespace),
    (async_namespaces.DiagnosticsNamespace, sync.DiagnosticsNamespace),
]

# How the async spelling reads in the blocking API.
SPELLING = [
    (r"(?:AbstractAsyncContextManager|StreamScope)\[(.*)\]'$", r"\1'"),
    (r"\bAsyncModelHandle\b", "ModelHandle"),
    (r"\bAsyncLLM\b", "LLM"),
    (r"\bAsyncEmbeddingModel\b", "EmbeddingModel"),
    (r"\bAsyncClient\b", "Client"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
]


def blocking(text: str) -> str:
    for pattern, replacement in SPELLING:
        text = re.sub(pattern, replacement, text)
    return text


def public_members(cls: type) -> list[str]:
    return sorted(
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    )


def signature(function: Any) -> str:
    return str(inspect.signature(function, eval_str=False))


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_every_async_method_has_a_blocking_twin(async_cls: type, sync_cls: type) -> None:
    assert public_members(sync_cls) == public_members(async_cls)


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_twins_share_signature_docstring_and_overloads(async_cls: type, sync_cls: type) -> None:
    for name in public_members(async_cls):
        async_member = inspect.getattr_static(async_cls, name)
        sync_member = inspect.getattr_static(sync_cls, name)
        if isinstance(async_member, property):
            assert isinstance(sync_member, property), name
            async_member, sync_member = async_member.fget, sync_member.fget
        assert signature(sync_member) == blocking(signature(async_member)), name
        assert inspect.getdoc(sync_member), f"{sync_cls.__name__}.{name} has no docstring"
        assert inspect.getdoc(sync_member) == blocking(inspect.getdoc(async_member) or ""), name
        if sys.version_info < (3, 11):
            continue  # typing.get_overloads is new in 3.11
        async_overloads = typing.get_overloads(async_member)
        sync_overloads = typing.get_overloads(sync_member)
        assert [signature(o) for o in sync_overloads] == [
            blocking(signature(o)) for o in async_overloads
        ], name


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is new in 3.11")
def test_tokenize_and_embed_keep_their_overloads() -> None:
    # The blocking tokenize once lost its overloads (str -> list[int], list -> list[list]).
    assert len(typing.get_overloads(sync.LLM.tokenize)) == 2
    assert len(typing.get_overloads(sync.EmbeddingModel.embed)) == 2
