"""A model catalogue file (TOML): the models a server offers, named the way LM Studio names them.

``lmsdk serve --catalog FILE.toml``, ``ServerOptions(catalog=...)`` and the pytest plugin's
``lmstudio_catalog`` setting read it. Each ``[[model]]`` table is one model::

    [[model]]
    key = "llama-3.2-1b-instruct"                    # the model key (also the first identifier)
    path = "hugging-quants/llama-3.2-1b-instruct"    # the LM Studio path reported and matched
    type = "llm"                                     # "llm" or "embedding"
    source = "smollm2-135m-instruct"                 # a bundled model, a .gguf file, or "scripted"
    display_name = "Llama 3.2 1B Instruct"           # optional
    context_length = 8192                            # optional: the maximum the model reports
    vision = false                                   # optional (llm): accepts images
    trained_for_tool_use = true                      # optional (llm)
    aliases = ["llama-3.2-1b"]                       # optional: more names it is found by
    preload = { identifier = "llama", ttl = 600 }    # optional: loaded at start (ttl: seconds)

Each ``[[upstream]]`` table is an OpenAI-compatible server to front (the fields of
:class:`~lmstudio_sdk.server.upstream.Upstream`; the API key comes from the environment
variable ``api_key_env`` names, never from the file)::

    [[upstream]]
    url = "http://127.0.0.1:8000/v1"
    api_key_env = "VLLM_API_KEY"                     # optional

``engine`` is optional and must agree with ``source`` (``llama`` for GGUF files and SmolLM2,
``sentence`` for MiniLM, ``scripted`` for ``source = "scripted"``). A ``.gguf`` source with
``type = "embedding"`` runs llama.cpp in embedding mode (the GGUF must be an embedding model). Unknown fields are errors
(a typo must not be silently ignored).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._options import ServedModel
from .engines.base import ModelFacts
from .upstream._config import Upstream

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = ["BUNDLED_SOURCES", "Catalog", "CatalogError", "Preload", "load_catalog", "parse_catalog"]

BUNDLED_SOURCES = ("smollm2-135m-instruct", "all-minilm-l6-v2")
"""The ``source`` names of the models bundled with the server's extras."""

_FIELDS = {
    "key",
    "path",
    "type",
    "source",
    "engine",
    "display_name",
    "context_length",
    "vision",
    "trained_for_tool_use",
    "preload",
    "aliases",
}


class CatalogError(ValueError):
    """A catalogue file that cannot be used; the message names the entry and the field."""


@attrs.frozen
class Preload:
    """A model loaded when the server starts."""

    key: str
    identifier: str
    ttl_ms: int | None = None


@attrs.frozen
class Catalog:
    """The models of a catalogue file and the ones to load at start."""

    models: tuple[ServedModel, ...]
    preloads: tuple[Preload, ...] = ()
    source: str = "<catalog>"
    upstreams: tuple[Upstream, ...] = ()
    """OpenAI-compatible servers whose models are served too (``[[upstream]]``)."""


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalogue TOML file (raises :class:`CatalogError` saying what is wrong)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read the catalogue {file}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{file} is not valid TOML: {exc}") from None
    return parse_catalog(data, source=str(file), base_dir=file.parent)


def parse_catalog(
    data: Mapping[str, Any], *, source: str = "<catalog>", base_dir: Path | None = None
) -> Catalog:
    """A catalogue from already parsed TOML (``{"model": [{...}, ...]}``)."""
    unknown = set(data) - {"model", "upstream"}
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level keys {sorted(unknown)}; use [[model]] or [[upstream]]"
        )
    upstreams = _upstreams(data.get("upstream", []), source)
    entries = data.get("model", [])
    if not isinstance(entries, list) or not (entries or upstreams):
        raise CatalogError(f"{source}: no [[model]] or [[upstream]] entry")
    models: list[ServedModel] = []
    preloads: list[Preload] = []
    names: dict[str, str] = {}
    for index, entry in enumerate(entries, 1):
        where = f"{source}: model #{index}"
        if not isinstance(entry, dict):
            raise CatalogError(f"{where} is not a table")
        where = f"{where} ({entry.get('key', '?')})"
        model = _served_model(entry, where, base_dir or Path.cwd())
        for name in (model.key, model.facts.path, *model.aliases):
            taken = names.setdefault(name.lower(), model.key)
            if taken != model.key:
                raise CatalogError(f"{where}: the name {name!r} is already used by {taken!r}")
        models.append(model)
        preload = _preload(entry.get("preload"), model.key, where)
        if preload is not None:
            preloads.append(preload)
    identifiers = [p.identifier for p in preloads]
    if len(set(identifiers)) != len(identifiers):
        raise CatalogError(f"{source}: two preloaded models share an identifier")
    return Catalog(tuple(models), tuple(preloads), source, upstreams)


_UPSTREAM_FIELDS = frozenset(attrs.fields_dict(Upstream))


def _upstreams(entries: Any, source: str) -> tuple[Upstream, ...]:
    if not isinstance(entries, list):
        raise CatalogError(f"{source}: upstream must be an array of tables ([[upstream]])")
    upstreams = []
    for index, entry in enumerate(entries, 1):
        where = f"{source}: upstream #{index}"
        if not isinstance(entry, dict):
            raise CatalogError(f"{where} is not a table")
        unknown = set(entry) - _UPSTREAM_FIELDS
        if unknown:
            raise CatalogError(
                f"{where}: unknown fields {sorted(unknown)} (known: {sorted(_UPSTREAM_FIELDS)}; "
                "the API key goes in an environment variable named by api_key_env)"
            )
        if "url" not in entry:
            raise CatalogError(f"{where}: url is required")
        try:
            upstreams.append(Upstream(**entry))
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"{where}: {exc}") from None
    return tuple(upstreams)


def _get(entry: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = entry.get(name)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # TOML booleans are Python ints: true is not a context length.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise CatalogError(f"{where}: {name} must be {_kind_name(kind)}, not {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {str: "a string", int: "an integer", bool: "true or false"}.get(k, k.__name__)
        for k in kinds
    )


def _required(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = _get(entry, name, str, where)
    if not value or not value.strip():
        raise CatalogError(f"{where}: {name} is required (a non-empty string)")
    return str(value.strip())


def _served_model(entry: Mapping[str, Any], where: str, base_dir: Path) -> ServedModel:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise CatalogError(f"{where}: unknown fields {sorted(unknown)} (known: {sorted(_FIELDS)})")
    key = _required(entry, "key", where)
    domain = _required(entry, "type", where)
    if domain not in ("llm", "embedding"):
        raise CatalogError(f"{where}: type must be 'llm' or 'embedding', not {domain!r}")
    source = _required(entry, "source", where)
    path = (_get(entry, "path", str, where) or key).strip().replace("\\", "/").strip("/")
    facts = _source_facts(source, key, domain, where, base_dir)
    engine = _get(entry, "engine", str, where)
    if engine is not None and engine != facts.engine:
        raise CatalogError(
            f"{where}: source {source!r} runs on the {facts.engine!r} engine, not {engine!r}"
        )
    if facts.domain != domain:
        raise CatalogError(f"{where}: source {source!r} is an {facts.domain} model, not {domain}")
    changes: dict[str, Any] = {"model_key": key, "path": path}
    publisher = path.split("/", 1)[0] if "/" in path else None
    if publisher:
        changes["publisher"] = publisher
    display_name = _get(entry, "display_name", str, where)
    changes["display_name"] = display_name or key
    context_length = _get(entry, "context_length", int, where)
    if context_length is not None:
        if context_length < 1:
            raise CatalogError(f"{where}: context_length must be >= 1, not {context_length}")
        changes["max_context_length"] = context_length
    for flag in ("vision", "trained_for_tool_use"):
        value = _get(entry, flag, bool, where)
        if value is not None:
            if domain != "llm":
                raise CatalogError(f"{where}: {flag} only applies to llm models")
            changes[flag] = value
    aliases = _get(entry, "aliases", list, where) or []
    if not all(isinstance(a, str) and a.strip() for a in aliases):
        raise CatalogError(f"{where}: aliases must be a list of non-empty strings")
    facts = attrs.evolve(facts, **changes)
    if facts.engine == "scripted":
        from .engines.scripted import Faults, Script

        return ServedModel(facts, Script(), Faults(), aliases=tuple(a.strip() for a in aliases))
    return ServedModel(facts, aliases=tuple(a.strip() for a in aliases))


def _source_facts(source: str, key: str, domain: str, where: str, base_dir: Path) -> ModelFacts:
    from .engines.base import EngineError

    try:
        if source == "scripted":
            from .engines.scripted import scripted_embedding_facts, scripted_llm_facts

            return scripted_llm_facts(key) if domain == "llm" else scripted_embedding_facts(key)
        if source == "smollm2-135m-instruct":
            from .engines.llama import smollm2_facts

            return smollm2_facts()
        if source == "all-minilm-l6-v2":
            from .engines.sentence import minilm_facts

            return minilm_facts()
        if source.lower().endswith(".gguf"):
            from .engines.llama import any_gguf_facts

            file = Path(source).expanduser()
            file = file if file.is_absolute() else base_dir / file
            # The file says what it is; a `type` that disagrees is reported below.
            return any_gguf_facts(file, model_key=key)
    except EngineError as exc:
        hint = f" ({exc.suggestion})" if exc.suggestion else ""
        raise CatalogError(f"{where}: {exc.title}{hint}") from None
    raise CatalogError(
        f"{where}: source must be a .gguf file, 'scripted' or a bundled model "
        f"({', '.join(BUNDLED_SOURCES)}), not {source!r}"
    )


def _preload(value: Any, key: str, where: str) -> Preload | None:
    if value is None or value is False:
        return None
    if value is True:
        return Preload(key, key)
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: preload must be true or a table {{identifier, ttl}}")
    unknown = set(value) - {"identifier", "ttl"}
    if unknown:
        raise CatalogError(f"{where}: unknown preload fields {sorted(unknown)}")
    identifier = _get(value, "identifier", str, where) or key
    ttl = _get(value, "ttl", int, where)
    if ttl is not None and ttl < 1:
        raise CatalogError(f"{where}: preload ttl must be >= 1 second, not {ttl}")
    return Preload(key, identifier, None if ttl is None else ttl * 1000)
