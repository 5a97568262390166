"""Per-client quotas, private logs, and the edge inputs that once crashed or forged output."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from _server_helpers import (
    EMBEDDING,
    LLM,
    WAIT,
    chat,
    connect,
    get_or_load,
    new_identity,
    query,
    stack,
)

from lmstudio_sdk.protocol.endpoints import diagnostics, files, llm, system
from lmstudio_sdk.protocol.endpoints.diagnostics import LLMPredictionInputLog, ServerLog
from lmstudio_sdk.protocol.endpoints.files import UploadFileBase64Parameter
from lmstudio_sdk.protocol.endpoints.llm import PredictCreationParameter
from lmstudio_sdk.protocol.endpoints.shared import LoadModelCreationParameter
from lmstudio_sdk.protocol.endpoints.system import NotifyParameter, SetExperimentFlagParameter
from lmstudio_sdk.protocol.events import (
    ChannelClosed,
    ChannelFailed,
    RpcFailed,
    RpcSucceeded,
    WarningReceived,
)
from lmstudio_sdk.server import BackgroundServer, ServerLimits


def _upload(name: str, data: bytes) -> UploadFileBase64Parameter:
    return UploadFileBase64Parameter(name, base64.b64encode(data).decode())


async def test_upload_quotas_per_client(server_factory: Callable[..., BackgroundServer]) -> None:
    server = server_factory(
        limits=ServerLimits(max_upload_files_per_client=2, max_upload_total_bytes_per_client=100)
    )
    async with connect(server, "files") as client, connect(server, "files") as other:
        assert isinstance(
            await client.call(files.UPLOAD_FILE_BASE64, _upload("a.txt", b"a")), RpcSucceeded
        )
        too_big = await client.call(files.UPLOAD_FILE_BASE64, _upload("b.txt", b"b" * 100))
        assert isinstance(too_big, RpcFailed)
        assert "Upload quota exceeded" in too_big.error.title
        assert "max_upload_total_bytes_per_client" in too_big.error.title
        assert isinstance(
            await client.call(files.UPLOAD_FILE_BASE64, _upload("c.txt", b"c")), RpcSucceeded
        )
        third = await client.call(files.UPLOAD_FILE_BASE64, _upload("d.txt", b"d"))
        assert isinstance(third, RpcFailed)
        assert "Too many uploaded files" in third.error.title
        # Quotas are per client: another identity uploads freely.
        assert isinstance(
            await other.call(files.UPLOAD_FILE_BASE64, _upload("e.txt", b"e")), RpcSucceeded
        )


async def test_loaded_instances_per_client(server_factory: Callable[..., BackgroundServer]) -> None:
    server = server_factory(limits=ServerLimits(max_loaded_instances_per_client=1))
    async with connect(server, "llm") as client, connect(server, "llm") as other:
        await get_or_load(client, LLM)
        channel = await client.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(LLM, stack(), identifier="second")
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert "Too many loaded models" in end.error.title
        assert "max_loaded_instances_per_client" in end.error.title
        # Another client has its own quota.
        channel = await other.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(LLM, stack(), identifier="theirs")
        )
        _, end = await other.until_end(channel)
        assert isinstance(end, ChannelClosed)
        # Unloading frees the quota.
        await client.result(llm.UNLOAD_MODEL, _unload(LLM))
        channel = await client.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(LLM, stack(), identifier="second")
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)


def _unload(identifier: str) -> Any:
    from lmstudio_sdk.protocol.endpoints.shared import UnloadModelParameter

    return UnloadModelParameter(identifier)


async def test_experiment_flags_are_bounded(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(limits=ServerLimits(max_experiment_flags=2))
    async with connect(server, "system") as client:
        for code in ("one", "two"):
            await client.result(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter(code, True))
        third = await client.call(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter("3", True))
        assert isinstance(third, RpcFailed)
        assert "max_experiment_flags" in third.error.title
        # Setting one already set, and clearing, still work.
        await client.result(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter("one", True))
        await client.result(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter("one", False))
        await client.result(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter("3", True))
        assert await client.result(system.GET_EXPERIMENT_FLAGS) == ["3", "two"]


async def test_open_channels_per_connection(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(limits=ServerLimits(max_channels_per_connection=2))
    async with connect(server, "system") as client:
        first = await client.open(system.ALIVE)
        second = await client.open(system.ALIVE)
        third = await client.open(system.ALIVE)
        end = await client.next_on(third)
        assert isinstance(end, ChannelFailed)
        assert "Too many open channels" in end.error.title
        assert "max_channels_per_connection" in (end.error.cause or "")
        assert first != second
        assert (await client.result(system.VERSION)).version
    assert server.refusals()["too many channels"] == 1


# --- diagnostics.streamLogs is private by default --------------------------------------------


async def _prompts_seen(server: BackgroundServer, reader: tuple[str, str]) -> list[str]:
    """Prompts the reader's log stream shows while it and another client predict."""
    async with (
        connect(server, "diagnostics", reader) as logs,
        connect(server, "llm", reader) as mine,
        connect(server, "llm") as stranger,
    ):
        stream = await logs.open(diagnostics.STREAM_LOGS)
        await get_or_load(mine, LLM)
        for client, text in ((stranger, "the stranger's secret"), (mine, "my own prompt")):
            channel = await client.open(
                llm.PREDICT,
                PredictCreationParameter(
                    model_specifier=query(LLM), history=chat(text), prediction_config_stack=stack()
                ),
            )
            _, end = await client.until_end(channel)
            assert isinstance(end, ChannelClosed)
        prompts: list[str] = []
        with anyio.fail_after(WAIT):
            # The reader's own prompt is published last: everything before it has arrived.
            while not any("my own prompt" in p for p in prompts):
                data = (await logs.next_on(stream)).log.data
                if isinstance(data, LLMPredictionInputLog):
                    prompts.append(data.input)
        return prompts


async def test_a_client_sees_only_its_own_prompts_in_the_logs(server: BackgroundServer) -> None:
    prompts = await _prompts_seen(server, new_identity())
    assert len(prompts) == 1
    assert "my own prompt" in prompts[0]


async def test_share_logs_restores_the_all_clients_view(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    prompts = await _prompts_seen(server_factory(share_logs=True), new_identity())
    assert len(prompts) == 2
    assert "the stranger's secret" in prompts[0]


async def test_server_events_reach_every_client(server: BackgroundServer) -> None:
    async with connect(server, "diagnostics") as logs, connect(server, "embedding") as loader:
        stream = await logs.open(diagnostics.STREAM_LOGS)
        await get_or_load(loader, EMBEDDING)
        with anyio.fail_after(WAIT):
            while True:
                data = (await logs.next_on(stream)).log.data
                if isinstance(data, ServerLog) and data.content.startswith("Loaded"):
                    break


# --- edge inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["callId", "channelId"])
async def test_ids_beyond_the_safe_range_get_a_warning_and_the_socket_lives(
    server: BackgroundServer, field: str
) -> None:
    async with connect(server, "system") as client:
        kind = "rpcCall" if field == "callId" else "channelCreate"
        await client.send(json.dumps({"type": kind, "endpoint": "version", field: 2**64}))
        warning = await client.wait_for(lambda e: isinstance(e, WarningReceived))
        assert f"{field} = 18446744073709551616, out of range" in warning.warning
        assert (await client.result(system.VERSION)).version


async def test_binary_frames_are_read_like_text_and_garbage_is_warned_about(
    server: BackgroundServer,
) -> None:
    async with connect(server, "system") as client:
        ws = client.socket._ws
        send = ws.send_message if hasattr(ws, "send_message") else ws.send
        await send(b"\xff\xfe not json")
        warning = await client.wait_for(lambda e: isinstance(e, WarningReceived))
        assert "not valid JSON" in warning.warning
        # LM Studio's server parses a binary frame's bytes as JSON text, as we do.
        call_id, frame = client.session.call(system.VERSION)
        await send(frame.encode())
        reply = await client.wait_for(lambda e: getattr(e, "call_id", None) == call_id)
        assert isinstance(reply, RpcSucceeded)


async def test_control_characters_cannot_forge_server_log_lines(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lmstudio_sdk.server")
    forged = "hi\n2026-01-01 00:00:00 WARNING lmstudio_sdk.server: FORGED\r\x1b[2J"
    async with connect(server, "system") as client:
        await client.result(system.NOTIFY, NotifyParameter(title=forged))
        await client.send(json.dumps({"type": "communicationWarning", "warning": forged}))
        # Frames of one socket are handled in order: both are logged once this is answered.
        assert (await client.result(system.VERSION)).version
    lines = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
    assert lines
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        assert "\x1b" not in line
        assert "hi\\n2026" in line
