"""The upstreams of one server: their HTTP clients, their models, routing and backoff.

Routing, not scheduling: a request for a model goes to an upstream that lists it, the one
with the fewest requests in flight from this server (ties go to the one used least
recently). An upstream that fails to connect or breaks a response is skipped for a backoff
that doubles from 0.5 s up to 30 s; after it, the next request tries it again, and a success
clears the backoff.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import httpx

from ..engines.base import EngineError, InvalidRequestError, ModelFacts
from ._config import Upstream

__all__ = ["Member", "UpstreamError", "UpstreamPool", "upstream_facts"]

logger = logging.getLogger("lmstudio_sdk.server.upstream")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
_EMBEDDING_NAME = re.compile(r"embed|minilm|bge-|e5-|gte-|nomic", re.IGNORECASE)


class UpstreamError(EngineError):
    """An upstream could not be reached, broke a response, or refused a request."""


@attrs.define(eq=False)
class Member:
    """One upstream and what this server knows about it."""

    config: Upstream
    client: httpx.AsyncClient
    models: dict[str, Mapping[str, Any]] = attrs.Factory(dict)
    in_flight: int = 0
    failures: int = 0
    down_until: float = 0.0
    last_used: float = 0.0
    tokenize_path: str | None = None
    json_object_dialect: bool = False
    """The upstream wants ``{"type": "json_object", "schema": ...}`` (llama-cpp-python)."""

    @property
    def label(self) -> str:
        return self.config.label

    def describe(self) -> str:
        return f"upstream {self.label} ({self.config.url})"


def _domain_of(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("type") or entry.get("task") or "")
    if "embed" in kind:
        return "embedding"
    if kind in ("llm", "vlm", "chat", "generate"):
        return "llm"
    return "embedding" if _EMBEDDING_NAME.search(str(entry.get("id", ""))) else "llm"


def upstream_facts(model_id: str, entry: Mapping[str, Any], default_context: int) -> ModelFacts:
    """The facts the catalogue reports for a model an upstream lists at ``/v1/models``."""
    context = entry.get("max_model_len") or entry.get("context_length")
    meta = entry.get("meta")
    if not context and isinstance(meta, Mapping):
        context = meta.get("n_ctx") or meta.get("n_ctx_train")
    if isinstance(context, bool) or not isinstance(context, int) or context <= 0:
        context = default_context
    domain = _domain_of(entry)
    return ModelFacts(
        model_key=model_id,
        display_name=model_id,
        publisher="upstream",
        domain="embedding" if domain == "embedding" else "llm",
        engine="upstream",
        format="gguf" if model_id.lower().endswith(".gguf") else "safetensors",
        path=f"upstream/{model_id}",
        file_path=None,
        size_bytes=0,
        max_context_length=context,
        trained_for_tool_use=domain == "llm",
    )


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, Mapping):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, Mapping):
            error = error.get("message", error)
        return str(error)[:500]
    return str(body)[:500]


async def send(member: Member, request: httpx.Request, *, stream: bool) -> httpx.Response:
    """Send ``request``; once more if a kept-alive connection turns out closed.

    A server may close an idle kept-alive connection (uvicorn does after a failed request)
    just as it is reused: then no byte of a response came back (the connection was closed
    or reset) and the request is sent again on a new connection, instead of counting the
    upstream as down. A second failure is the upstream's.
    """
    try:
        return await member.client.send(request, stream=stream)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return await member.client.send(request, stream=stream)


BodyFactory = Callable[[Member], Mapping[str, Any]]
"""Builds a request body for the chosen upstream (its dialect may differ)."""


def _wants_json_object(
    member: Member, payload: Mapping[str, Any], response: httpx.Response
) -> bool:
    response_format = payload.get("response_format")
    return (
        # llama-cpp-python answers its validation errors with 500 (FastAPI would say 422).
        response.status_code in (400, 422, 500)
        and not member.json_object_dialect
        and isinstance(response_format, Mapping)
        and response_format.get("type") == "json_schema"
        and "response_format" in response.text
    )


class UpstreamPool:
    """See the module docstring. Used from the server's event loop only."""

    def __init__(self, upstreams: Iterable[Upstream]) -> None:
        self.members: list[Member] = []
        for config in upstreams:
            headers = {}
            key = config.api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            timeout = httpx.Timeout(
                config.read_timeout, connect=config.connect_timeout, pool=config.connect_timeout
            )
            client = httpx.AsyncClient(
                base_url=config.url,
                headers=headers,
                timeout=timeout,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            )
            self.members.append(Member(config=config, client=client))

    # ------------------------------------------------------------------ discovery

    async def discover(self) -> list[ModelFacts]:
        """Ask every upstream for ``/models``; returns one :class:`ModelFacts` per model id.

        An upstream that does not answer is logged and left without models; if none
        answers, :class:`UpstreamError` names them all.
        """
        facts: dict[str, ModelFacts] = {}
        failed: list[str] = []
        for member in self.members:
            try:
                response = await member.client.get("/models")
                response.raise_for_status()
                data = response.json().get("data", [])
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                failed.append(f"{member.describe()}: {type(exc).__name__}: {exc}")
                self.mark_down(member)
                continue
            for entry in data:
                if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                    model_id = entry["id"]
                    member.models[model_id] = entry
                    facts.setdefault(
                        model_id,
                        upstream_facts(model_id, entry, member.config.context_length),
                    )
            logger.info("%s serves %s", member.describe(), ", ".join(member.models) or "nothing")
        for line in failed:
            logger.warning("no model list from %s", line)
        if failed and len(failed) == len(self.members):
            raise UpstreamError(
                "No upstream answered GET /models: " + "; ".join(failed),
                suggestion="Check that the upstream servers run and that the URLs end in /v1.",
            )
        return list(facts.values())

    # ------------------------------------------------------------------ routing

    def mark_down(self, member: Member) -> float:
        """Skip ``member`` for the next backoff delay (returned, in seconds)."""
        delay = float(min(BACKOFF_MAX, BACKOFF_FIRST * 2**member.failures))
        member.failures += 1
        member.down_until = anyio.current_time() + delay
        logger.warning("%s is down; skipping it for %.1f s", member.describe(), delay)
        return delay

    def mark_up(self, member: Member) -> None:
        if member.failures:
            logger.info("%s answers again", member.describe())
        member.failures = 0
        member.down_until = 0.0

    def pick(self, model_id: str, *, exclude: Iterable[Member] = ()) -> Member:
        """The upstream to send a request for ``model_id`` to (see the module docstring)."""
        excluded = set(map(id, exclude))
        serving = [m for m in self.members if model_id in m.models]
        if not serving:
            raise UpstreamError(f"No upstream serves the model {model_id!r}.")
        now = anyio.current_time()
        alive = [m for m in serving if m.down_until <= now and id(m) not in excluded]
        if not alive:
            names = ", ".join(m.describe() for m in serving)
            retry = min(max(0.0, m.down_until - now) for m in serving)
            raise UpstreamError(
                f"No upstream serving {model_id!r} is answering ({names}).",
                suggestion=f"The next attempt goes out in {retry:.1f} s; check the upstreams.",
            )
        chosen = min(alive, key=lambda m: (m.in_flight, m.last_used))
        chosen.last_used = now
        return chosen

    @asynccontextmanager
    async def stream(
        self, model_id: str, path: str, body: BodyFactory
    ) -> AsyncIterator[tuple[Member, httpx.Response]]:
        """POST ``body(member)`` to an upstream serving ``model_id`` and stream the answer.

        Connection failures move on to the next upstream; a refusal (4xx/5xx) raises
        :class:`UpstreamError` (or :class:`InvalidRequestError` for 4xx) with the upstream's
        message. Leaving the block closes the HTTP response at once, which is how the
        upstream learns that the client went away (vLLM and llama.cpp then abort).
        """
        tried: list[Member] = []
        while True:
            member = self.pick(model_id, exclude=tried)
            tried.append(member)
            member.in_flight += 1
            try:
                payload = body(member)
                request = member.client.build_request("POST", path, json=payload)
                try:
                    response = await send(member, request, stream=True)
                except httpx.HTTPError as exc:
                    # Nothing reached the client yet: another upstream may answer instead.
                    self.mark_down(member)
                    logger.warning("%s: %s: %s", member.describe(), type(exc).__name__, exc)
                    continue
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        if _wants_json_object(member, payload, response):
                            # llama-cpp-python only takes {"type": "json_object", "schema"}.
                            member.json_object_dialect = True
                            tried.remove(member)
                            continue
                        raise self.refusal(member, response)
                    yield member, response
                finally:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
                return
            finally:
                member.in_flight -= 1

    def refusal(self, member: Member, response: httpx.Response) -> EngineError:
        """The error for an HTTP error answer from ``member``."""
        message = f"{member.describe()} answered {response.status_code}: {_error_message(response)}"
        if 400 <= response.status_code < 500:
            return InvalidRequestError(message)
        return UpstreamError(message)

    def broken(self, member: Member, exc: BaseException) -> UpstreamError:
        """The error for a response that broke off (the upstream is then skipped a while)."""
        self.mark_down(member)
        return UpstreamError(
            f"{member.describe()} failed during the request: {type(exc).__name__}: {exc}",
            suggestion="The upstream is skipped for a while; the next request goes to another "
            "upstream serving the model, if any.",
        )

    async def post_json(self, model_id: str, path: str, body: Mapping[str, Any]) -> Any:
        """POST and read a JSON answer (embeddings), with the same routing as :meth:`stream`."""
        async with self.stream(model_id, path, lambda _: body) as (member, response):
            try:
                await response.aread()
                result = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise self.broken(member, exc) from exc
            self.mark_up(member)
            return result

    # ------------------------------------------------------------------ tokenize

    async def tokenize(
        self, model_id: str, text: str, *, member: Member | None = None
    ) -> list[int]:
        """Token ids from the tokenizer endpoint of ``member`` or an upstream serving
        ``model_id``.

        vLLM and llama.cpp's C++ server have ``POST /tokenize`` at the root (not under
        ``/v1``); llama-cpp-python has ``POST /extras/tokenize``. One body serves all three
        (each ignores the others' keys). An upstream with neither is a clear error.
        """
        member = member or self.pick(model_id)
        body = {
            "model": model_id,
            "prompt": text,
            "content": text,
            "input": text,
            "add_special_tokens": False,
        }
        paths = (
            [member.tokenize_path] if member.tokenize_path else ["/tokenize", "/extras/tokenize"]
        )
        for path in paths:
            try:
                response = await member.client.post(member.config.root + path, json=body)
            except httpx.HTTPError as exc:
                raise self.broken(member, exc) from exc
            if response.status_code in (404, 405):
                continue
            if response.status_code >= 400:
                raise self.refusal(member, response)
            tokens = response.json().get("tokens")
            if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
                raise UpstreamError(f"{member.describe()} answered {path} without a token list.")
            member.tokenize_path = path
            return tokens
        raise UpstreamError(
            f"{member.describe()} has no tokenizer endpoint (tried "
            f"{', '.join(member.config.root + p for p in paths)}).",
            suggestion="Tokenizing and counting tokens need an upstream with /tokenize "
            "(vLLM, llama.cpp's server).",
        )

    async def aclose(self) -> None:
        """Close every HTTP client (their connections end)."""
        with anyio.CancelScope(shield=True):
            for member in self.members:
                await member.client.aclose()
