"""Bad input gets a clear reply or warning, and other clients keep being served meanwhile."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _server_helpers import (
    LLM,
    WAIT,
    SocketClosed,
    TestClient,
    chat,
    connect,
    get_or_load,
    open_socket,
    query,
    stack,
)

from lmstudio_sdk.protocol.endpoints import files, llm
from lmstudio_sdk.protocol.endpoints.files import (
    GetLocalFileAbsolutePathParameter,
    UploadFileBase64Parameter,
)
from lmstudio_sdk.protocol.endpoints.llm import (
    PredictCreationParameter,
    PredictFragment,
    PredictSuccess,
)
from lmstudio_sdk.protocol.events import (
    ChannelClosed,
    ChannelFailed,
    RpcFailed,
    RpcSucceeded,
    WarningReceived,
)
from lmstudio_sdk.server import BackgroundServer, Script, scripted_model

STREAM = "stream-llm"
STREAM_FRAGMENTS = 150  # at 100 per second: the stream outlasts the bad input below
MAX_FRAME = 2**20


def _is_warning(event: Any) -> bool:
    return isinstance(event, WarningReceived)


async def _auth_raw(server: BackgroundServer, namespace: str, identifier: str, passkey: str) -> Any:
    async with open_socket(f"{server.url}/{namespace}") as socket:
        await socket.send(
            json.dumps({"authVersion": 1, "clientIdentifier": identifier, "clientPasskey": passkey})
        )
        with anyio.fail_after(WAIT):
            return json.loads(await socket.recv())


async def misbehave(server: BackgroundServer, client: TestClient, storage: Path) -> None:
    """Every kind of bad input, each checked for its clear reply."""
    # Malformed JSON: a warning, and the socket still works.
    await client.send("{this is not json")
    warning = await client.wait_for(_is_warning)
    assert "not a valid message" in warning.warning
    assert await client.result(llm.LIST_LOADED) is not None

    # Unknown endpoints and bad parameters: the reference's warnings (no reply).
    await client.send(json.dumps({"type": "rpcCall", "endpoint": "noSuchRpc", "callId": 900}))
    assert (await client.wait_for(_is_warning)).kind == "rpcEndpointUnknown"
    await client.send(
        json.dumps({"type": "channelCreate", "endpoint": "noSuchChannel", "channelId": 900})
    )
    assert (await client.wait_for(_is_warning)).kind == "channelEndpointUnknown"
    await client.send(
        json.dumps(
            {
                "type": "rpcCall",
                "endpoint": "getModelInfo",
                "callId": 901,
                "parameter": {"specifier": 5},
            }
        )
    )
    warning = await client.wait_for(_is_warning)
    assert warning.kind == "rpcParameterTypeError"
    assert "specifier" in warning.warning
    # Unknown fields are accepted (newer clients send fields we do not model).
    await client.send(
        json.dumps({"type": "rpcCall", "endpoint": "listLoaded", "callId": 902, "futureField": 1})
    )
    assert json.loads(await client.recv_frame())["callId"] == 902

    # An unknown model: an error reply with the code clients key on.
    channel = await client.open(
        llm.PREDICT,
        PredictCreationParameter(
            model_specifier=query("no-such-model"),
            history=chat("Hi"),
            prediction_config_stack=stack(),
        ),
    )
    _, end = await client.until_end(channel)
    assert isinstance(end, ChannelFailed)
    assert end.error.code == "generic.noModelMatchingQuery"

    # A wrong passkey for an identity in use.
    reply = await _auth_raw(server, "system", client.session.client_identifier, "wrong")
    assert reply["success"] is False
    assert "Invalid client passkey" in reply["error"]

    # Path traversal in file names never leaves the client's storage directory.
    async with connect(server, "files") as file_client:
        upload = await file_client.result(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("../../escape.txt", base64.b64encode(b"x").decode()),
        )
        located = await file_client.result(
            files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter(upload.identifier)
        )
        path = anyio.Path(located.path)
        assert await path.is_file()
        assert Path(located.path).is_relative_to(await anyio.Path(storage).resolve())
        assert path.name.endswith("escape.txt")
        assert not await anyio.Path(storage.parent / "escape.txt").exists()
        assert not await anyio.Path(storage.parent.parent / "escape.txt").exists()
        for name in ("../../etc/passwd", "/etc/passwd", "..", upload.identifier + "/.."):
            reply = await file_client.call(
                files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter(name)
            )
            assert isinstance(reply, RpcFailed), name
            assert "No uploaded file" in reply.error.title
        # Too big once decoded (the frame itself is allowed).
        reply = await file_client.call(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("big.bin", base64.b64encode(b"\0" * 300_000).decode()),
        )
        assert isinstance(reply, RpcFailed)
        assert "larger than" in reply.error.title
        reply = await file_client.call(
            files.UPLOAD_FILE_BASE64, UploadFileBase64Parameter("bad.txt", "not base64 !!!")
        )
        assert isinstance(reply, RpcFailed)
        assert "base64" in reply.error.title

    # An oversized frame: that connection is closed with 1009 (message too big).
    async with connect(server, "llm") as big:
        await big.send("x" * (MAX_FRAME + 1))
        with pytest.raises(SocketClosed) as info:
            await big.recv_frame()
        assert info.value.code == 1009


async def test_bad_input_gets_clear_replies_while_another_client_streams(
    server_factory: Callable[..., BackgroundServer], tmp_path: Path
) -> None:
    storage = tmp_path / "files"
    server = server_factory(
        models=[
            scripted_model(LLM),
            scripted_model(
                STREAM,
                script=Script(fragments=("tok ",) * STREAM_FRAGMENTS, fragments_per_second=100),
            ),
        ],
        max_frame_bytes=MAX_FRAME,
        max_upload_bytes=200_000,
        file_storage_dir=storage,
    )
    arrivals: list[float] = []
    finished: list[Any] = []
    done_at: list[float] = []

    async def stream() -> None:
        async with connect(server, "llm") as streamer:
            await get_or_load(streamer, STREAM)
            channel = await streamer.open(
                llm.PREDICT,
                PredictCreationParameter(
                    model_specifier=query(STREAM),
                    history=chat("Go"),
                    prediction_config_stack=stack(),
                ),
            )
            while True:
                item = await streamer.next_on(channel)
                if isinstance(item, PredictFragment):
                    arrivals.append(anyio.current_time())
                    if len(arrivals) == 1:
                        started.set()
                elif isinstance(item, (ChannelClosed, ChannelFailed)):
                    finished.append(item)
                    return
                else:
                    finished.append(item)

    started = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(stream)
        await started.wait()
        async with connect(server, "llm") as client:
            await misbehave(server, client, storage)
        done_at.append(anyio.current_time())

    assert len(arrivals) == STREAM_FRAGMENTS, "the stream lost fragments"
    assert isinstance(finished[-2], PredictSuccess)
    assert finished[-2].stats.stop_reason == "eosFound"
    assert isinstance(finished[-1], ChannelClosed)
    # The bad input happened while the stream was flowing, and did not stall it.
    assert arrivals[0] < done_at[0] < arrivals[-1], "the stream was not concurrent with the test"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.0, f"the stream stalled for {max(gaps):.2f}s"


async def test_strict_errors_answer_instead_of_warning(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(strict_errors=True)
    async with connect(server, "llm") as client:
        await client.send(json.dumps({"type": "rpcCall", "endpoint": "noSuchRpc", "callId": 7}))
        reply = json.loads(await client.recv_frame())
        assert reply["type"] == "rpcError"
        assert reply["callId"] == 7
        assert "noSuchRpc" in reply["error"]["title"]
        await client.send(json.dumps({"type": "channelCreate", "endpoint": "nope", "channelId": 8}))
        reply = json.loads(await client.recv_frame())
        assert (reply["type"], reply["channelId"]) == ("channelError", 8)
        await client.send(
            json.dumps({"type": "rpcCall", "endpoint": "tokenize", "callId": 9, "parameter": {}})
        )
        reply = json.loads(await client.recv_frame())
        assert (reply["type"], reply["callId"]) == ("rpcError", 9)
        # Real calls are still answered normally.
        assert isinstance(await client.call(llm.LIST_LOADED), RpcSucceeded)


async def test_warnings_are_capped_per_socket(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        for call_id in range(10):
            await client.send(
                json.dumps({"type": "rpcCall", "endpoint": "nope", "callId": call_id})
            )
        # Only the answer to this call may follow the five warnings.
        result = await client.call(llm.LIST_LOADED)
        assert isinstance(result, RpcSucceeded)
        warnings = [f for f in client.frames if '"communicationWarning"' in f]
        assert len(warnings) == 5
