"""The sans-io core of the LM Studio websocket protocol, for advanced users.

Nothing in this package does I/O: no sockets, threads, clocks or event loops, and no
import of anyio, trio or any websocket library (``tests/protocol/test_no_io.py`` checks
it). The sessions take text frames in and give text frames and events back, so they can
be driven by any I/O layer, or tested with a client and a server session passing frames
to each other in memory::

    client = ClientSession("guest:me", "passkey")
    server = ServerSession("llm", endpoints, IdentityRegistry())
    server.receive_text(client.start())
    for frame in server.data_to_send():
        client.receive_text(frame)  # [Authenticated()]

Modules: :mod:`.wire` (the envelope), :mod:`.events`, :mod:`.session`
(:class:`ClientSession`), :mod:`.server_session` (:class:`ServerSession`,
:class:`IdentityRegistry`), :mod:`.codec` (the cattrs converter) and
:mod:`.endpoints` (payload types of every endpoint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._unset import UNSET as UNSET
from ._unset import UnsetType as UnsetType
from .codec import USING_ORJSON as USING_ORJSON
from .codec import Unknown as Unknown
from .codec import converter as converter
from .codec import dumps as dumps
from .codec import loads as loads
from .codec import register_tagged_union as register_tagged_union
from .codec import structure as structure
from .codec import unstructure as unstructure
from .codec import variant as variant
from .endpoints._spec import ChannelSpec as ChannelSpec
from .endpoints._spec import RpcSpec as RpcSpec
from .events import Authenticated as Authenticated
from .events import AuthenticationFailed as AuthenticationFailed
from .events import AuthenticationRejected as AuthenticationRejected
from .events import CallReceived as CallReceived
from .events import ChannelClosed as ChannelClosed
from .events import ChannelFailed as ChannelFailed
from .events import ChannelOpened as ChannelOpened
from .events import ChannelPacketReceived as ChannelPacketReceived
from .events import ClientAuthenticated as ClientAuthenticated
from .events import ClientDisconnected as ClientDisconnected
from .events import ClientEvent as ClientEvent
from .events import ConnectionLost as ConnectionLost
from .events import Event as Event
from .events import KeepAliveAcknowledged as KeepAliveAcknowledged
from .events import MessageIgnored as MessageIgnored
from .events import PayloadInvalid as PayloadInvalid
from .events import RequestRejected as RequestRejected
from .events import RpcFailed as RpcFailed
from .events import RpcSucceeded as RpcSucceeded
from .events import ServerEvent as ServerEvent
from .events import StrayMessageReceived as StrayMessageReceived
from .events import UnknownMessageReceived as UnknownMessageReceived
from .events import WarningReceived as WarningReceived
from .session import ClientSession as ClientSession
from .session import SessionState as SessionState
from .session import parse_api_token as parse_api_token
from .wire import AuthPacket as AuthPacket
from .wire import AuthResult as AuthResult
from .wire import ChannelAck as ChannelAck
from .wire import ChannelClose as ChannelClose
from .wire import ChannelCreate as ChannelCreate
from .wire import ChannelError as ChannelError
from .wire import ChannelSend as ChannelSend
from .wire import ClientToServer as ClientToServer
from .wire import CommunicationWarning as CommunicationWarning
from .wire import KeepAlive as KeepAlive
from .wire import KeepAliveAck as KeepAliveAck
from .wire import RpcCall as RpcCall
from .wire import RpcError as RpcError
from .wire import RpcResult as RpcResult
from .wire import SerializedError as SerializedError
from .wire import ServerToClient as ServerToClient
from .wire import SignalError as SignalError
from .wire import SignalSubscribe as SignalSubscribe
from .wire import SignalUnsubscribe as SignalUnsubscribe
from .wire import SignalUpdate as SignalUpdate
from .wire import WritableSignalError as WritableSignalError
from .wire import WritableSignalSubscribe as WritableSignalSubscribe
from .wire import WritableSignalUnsubscribe as WritableSignalUnsubscribe
from .wire import WritableSignalUpdate as WritableSignalUpdate
from .wire import decode_client_message as decode_client_message
from .wire import decode_server_message as decode_server_message
from .wire import encode as encode

if TYPE_CHECKING:
    from .server_session import IdentityRegistry as IdentityRegistry
    from .server_session import ServerSession as ServerSession


def __getattr__(name: str) -> Any:
    # The server's side is imported on first use (PEP 562): a client never needs it.
    if name in ("IdentityRegistry", "ServerSession"):
        from . import server_session

        return getattr(server_session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
