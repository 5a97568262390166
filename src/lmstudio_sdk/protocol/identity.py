"""Who may talk to a server: the identities of its clients, shared by all its sockets.

The reference server authenticates first-come-first-served: the first socket to present a
client identifier fixes its passkey, later sockets must present the same one, and the
identity is released when its last socket closes. API tokens (``sk-lm-...``) pre-reserve
an identity. Used by :class:`~lmstudio_sdk.protocol.server_session.ServerSession`; no I/O.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import attrs

from ..errors import LMStudioAuthError
from .session import parse_api_token

__all__ = ["IdentityRegistry"]


@attrs.define
class _Identity:
    passkey: str = attrs.field(repr=False)
    holders: int


def _same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class IdentityRegistry:
    """Client identities of one server, shared by all its sockets (first come, first served).

    The first socket that presents an identifier fixes its passkey; later sockets (other
    namespaces, reconnections) must present the same one. Each authenticated socket holds
    the identity; it is released when the last holder goes, and may then be claimed anew.

    API tokens (``sk-lm-<8 alnum>:<20 alnum>``) reserve their identifier for their
    passkey. With ``require_token=True`` only token holders get in; otherwise guests are
    welcome too. Not thread-safe: use one registry from one event loop.

    :param api_tokens: tokens this server accepts.
    :param require_token: reject clients that do not present one of ``api_tokens``.
    """

    def __init__(self, api_tokens: Iterable[str] = (), *, require_token: bool = False) -> None:
        self._tokens: dict[str, str] = {}
        self._identities: dict[str, _Identity] = {}
        self.require_token = require_token
        for token in api_tokens:
            self.add_api_token(token)

    def __repr__(self) -> str:
        return (
            f"<IdentityRegistry {len(self._identities)} identities, {len(self._tokens)} tokens, "
            f"require_token={self.require_token}>"
        )

    def __len__(self) -> int:
        return len(self._identities)

    def __contains__(self, client_identifier: object) -> bool:
        return client_identifier in self._identities

    def add_api_token(self, token: str) -> None:
        """Accept ``token`` from now on (a malformed one is a ``LocalProtocolError``)."""
        identifier, passkey = parse_api_token(token)
        self._tokens[identifier] = passkey

    def holders(self, client_identifier: str) -> int:
        """How many sockets currently hold the identity (0 if unknown)."""
        identity = self._identities.get(client_identifier)
        return identity.holders if identity is not None else 0

    def acquire(self, client_identifier: str, client_passkey: str) -> None:
        """Authenticate one socket, holding the identity on success.

        :raises LMStudioAuthError: with the message to send back to the client.
        """
        token_passkey = self._tokens.get(client_identifier)
        if token_passkey is not None:
            if not _same_secret(client_passkey, token_passkey):
                raise LMStudioAuthError(_wrong_passkey(client_identifier))
        elif self.require_token:
            raise LMStudioAuthError(
                "Failed to validate client: this server requires an API token "
                "(sk-lm-...); pass api_token= or set LM_API_TOKEN"
            )
        identity = self._identities.get(client_identifier)
        if identity is None:
            self._identities[client_identifier] = _Identity(client_passkey, holders=1)
            return
        if not _same_secret(client_passkey, identity.passkey):
            raise LMStudioAuthError(_wrong_passkey(client_identifier))
        identity.holders += 1

    def release(self, client_identifier: str) -> bool:
        """Drop one socket's hold; return ``True`` if that released the identity."""
        identity = self._identities.get(client_identifier)
        if identity is None:
            return False
        identity.holders -= 1
        if identity.holders > 0:
            return False
        del self._identities[client_identifier]
        return True


def _wrong_passkey(client_identifier: str) -> str:
    # The reference authenticator's exact wording (fcfsAuthenticator.ts).
    return f'Failed to validate client: Invalid client passkey for client "{client_identifier}"'
