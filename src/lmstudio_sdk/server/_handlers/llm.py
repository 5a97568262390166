"""The ``llm`` namespace beyond model management: predictions and prompt templates.

A prediction (``predict`` or ``completeRawText``) streams ``promptProcessingProgress`` (with
``details``, only before the first token), ``fragment`` packets (with ``isStructural`` and
integer token counts) and tool-call packets, and **always** ends with ``success`` (stats,
model info, load config, prediction config) before ``channelClose``, also when the client
sent ``cancel`` (then ``stopReason`` is ``userStopped``; PROTOCOL.md 12.2 and 12.3).

Completion comes two ways (PROTOCOL.md 12.15): ``completeRawText`` (JS 2.0) continues the
raw prompt, and ``predict`` with a ``completeModeFormatting`` layer (Python, JS 1.x) renders
the history with the layer's Jinja template instead of the model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from ...errors import LMStudioServerError
from ...protocol._unset import UNSET
from ...protocol.codec import unstructure
from ...protocol.endpoints import llm as llm_ep
from ...protocol.endpoints.diagnostics import LLMPredictionInputLog, LLMPredictionOutputLog
from ...protocol.endpoints.shared import (
    FilePart,
    LLMCandidateToken,
    LLMInstanceInfo,
    LLMPredictionFragment,
    LLMToken,
    LLMTool,
    ToolCallRequest,
)
from ...protocol.wire import SerializedError
from .._catalog import Instance, instance_info
from .._connection import CallContext, ChannelContext, ConnectionDropped
from .._errors import bad_request, images_not_supported
from ..engines import events
from ..engines.base import LLMEngine
from ._prediction import (
    PredictionSettings,
    history_to_messages,
    prediction_stats,
    read_prediction_config,
    render_manual_template,
)
from ._table import TABLE

__all__: list[str] = []


def _llm_engine(instance: Instance) -> LLMEngine:
    engine = instance.engine
    if not isinstance(engine, LLMEngine):  # pragma: no cover - the catalogue keeps domains apart
        raise bad_request(f"{instance.identifier} is not a language model.")
    return engine


def _check_preset(identifier: Any) -> None:
    if isinstance(identifier, str):
        # This server has no presets (PROTOCOL.md 5: the error the reference sends).
        raise LMStudioServerError(
            f"No preset matches {identifier!r}.",
            cause="This server has no presets.",
            code="generic.presetNotFound",
            display_data={
                "code": "generic.presetNotFound",
                "specifiedFuzzyPresetIdentifier": identifier,
                "availablePresetsSample": [],
                "totalAvailablePresets": 0,
            },
        )


_CONCATENATION = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def _is_concatenation(template: str) -> bool:
    return "".join(template.split()) == "".join(_CONCATENATION.split())


def refuse_images(instance: Instance, history: Any) -> None:
    """LM Studio refuses images sent to a model that is not a vision model.

    (A catalogue entry with ``vision = true`` accepts them; until a small vision model is
    bundled, the engine sees a text placeholder in their place.)
    """
    for message in getattr(history, "messages", ()):
        content = getattr(message, "content", ())
        if not isinstance(content, (list, tuple)):
            continue
        if any(isinstance(p, FilePart) and p.file_type == "image" for p in content):
            raise images_not_supported(instance.model.key)


def _chat_messages(
    context: CallContext, history: Any, settings: PredictionSettings
) -> list[dict[str, Any]]:
    files = context.server.files
    client = context.client_identifier
    return history_to_messages(
        history,
        lambda file_id: files.read_text(client, file_id),
        settings.system_prompt,
        read_image=lambda file_id: files.image_data_url(client, file_id),
    )


async def _render_prompt(
    context: CallContext,
    instance: Instance,
    history: Any,
    settings: PredictionSettings,
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    omit_bos_token: bool = False,
    omit_eos_token: bool = False,
    messages: list[dict[str, Any]] | None = None,
) -> str:
    if not instance.facts.vision:
        refuse_images(instance, history)
    if messages is None:
        messages = _chat_messages(context, history, settings)
    if settings.manual_template is not None:
        return render_manual_template(settings.manual_template, messages)
    if settings.jinja_template is not None and _is_concatenation(settings.jinja_template):
        # The template the Python SDK's complete() sends: the prompt is the message text as
        # is. Rendered here, so that completion needs neither jinja2 nor the engine.
        return "".join(str(m["content"]) for m in messages)
    return await _llm_engine(instance).apply_prompt_template(
        messages,
        tools=tools or None,
        omit_bos_token=omit_bos_token,
        omit_eos_token=omit_eos_token,
        template=settings.jinja_template,
    )


async def _predict(
    context: ChannelContext,
    instance: Instance,
    prompt: str,
    settings: PredictionSettings,
    messages: list[dict[str, Any]] | None = None,
) -> None:
    """Run one generation and stream it; see the module docstring."""
    server = context.server
    engine = _llm_engine(instance)
    request = settings.generation_request(prompt, messages)
    if request.seed is None and instance.seed is not None:
        # The load seed is the instance's default; a prediction's own seed wins.
        request = attrs.evolve(request, seed=instance.next_seed())
    server.logs.publish(
        LLMPredictionInputLog(
            input=prompt, model_path=instance.facts.path, model_identifier=instance.identifier
        ),
        owner=context.client_identifier,
    )
    output: list[str] = []
    finished: events.Finished | None = None
    started = False  # a token or a tool call went out: no more prompt progress
    with server.catalog.use(instance, generating=True):
        async with engine.generate(request) as stream, anyio.create_task_group() as watcher:

            async def stop_on_cancel() -> None:
                await context.cancel_requested.wait()
                stream.stop("userStopped")

            watcher.start_soon(stop_on_cancel)
            async for event in stream:
                if isinstance(event, events.TokenPiece):
                    started = True
                    if not event.text and not event.tokens_count:
                        continue
                    output.append(event.text)
                    # The hot path: built here from typed values, so the round-trip check
                    # of every fragment (structuring its JSON back) is skipped.
                    await context.send(
                        llm_ep.PredictFragment(
                            LLMPredictionFragment(
                                content=str(event.text),
                                tokens_count=int(event.tokens_count),
                                contains_drafted=False,
                                reasoning_type=event.reasoning_type,
                                is_structural=bool(event.is_structural),
                                tokens=UNSET if event.tokens is None else _wire_tokens(event),
                            )
                        ),
                        check=False,
                    )
                elif isinstance(event, events.PromptProgress):
                    if not started:
                        await context.send(_progress_packet(event))
                elif isinstance(event, events.Finished):
                    finished = event
                elif isinstance(event, events.FaultEvent):
                    if event.kind == "dropSocket":
                        context.connection.drop()
                        raise ConnectionDropped
                    await context.connection.send_malformed_frame()
                else:
                    started = True
                    await context.send(_tool_packet(event))
            watcher.cancel_scope.cancel()
    if finished is None:  # pragma: no cover - engines always end with Finished
        raise bad_request("The generation ended without a result.")
    stats = prediction_stats(finished)
    info = instance_info(instance)
    assert isinstance(info, LLMInstanceInfo)
    await context.send(
        llm_ep.PredictSuccess(
            stats=stats,
            model_info=info,
            load_model_config=instance.load_config(),
            prediction_config=settings.used,
        )
    )
    server.logs.publish(
        LLMPredictionOutputLog(
            output="".join(output), model_identifier=instance.identifier, stats=stats
        ),
        owner=context.client_identifier,
    )


def _wire_tokens(piece: events.TokenPiece) -> list[LLMToken]:
    """A piece's token log-probabilities as LM Studio sends them (``fragment.tokens``)."""
    return [
        LLMToken(
            text=token.text,
            id=token.id,
            log_prob=token.log_prob,
            candidates=[LLMCandidateToken(c.text, c.id, c.log_prob) for c in token.candidates]
            if token.candidates
            else UNSET,
        )
        for token in piece.tokens or ()
    ]


def _progress_packet(event: events.PromptProgress) -> llm_ep.PredictPromptProcessingProgress:
    total = max(0, int(event.total))
    processed = min(total, max(0, int(event.processed)))
    return llm_ep.PredictPromptProcessingProgress(
        progress=min(1.0, max(0.0, float(event.fraction))),
        details=llm_ep.PromptProcessingDetails(
            cached_token_count=max(0, int(event.cached)),
            total_prompt_token_count=total,
            processed_prompt_token_count=processed,
            unprocessed_prompt_token_count=total - processed,
        ),
    )


def _tool_packet(event: Any) -> Any:
    if isinstance(event, events.ToolCallStart):
        return llm_ep.PredictToolCallGenerationStart(
            tool_call_id=event.call_id if event.call_id is not None else UNSET
        )
    if isinstance(event, events.ToolCallName):
        return llm_ep.PredictToolCallGenerationNameReceived(event.name)
    if isinstance(event, events.ToolCallArgumentFragment):
        return llm_ep.PredictToolCallGenerationArgumentFragmentGenerated(event.text)
    if isinstance(event, events.ToolCallEnd):
        return llm_ep.PredictToolCallGenerationEnd(
            ToolCallRequest(
                name=event.name,
                id=event.call_id if event.call_id is not None else UNSET,
                arguments=dict(event.arguments),
            ),
            raw_content=event.raw_content if event.raw_content is not None else UNSET,
        )
    if isinstance(event, events.ToolCallFailed):
        return llm_ep.PredictToolCallGenerationFailed(
            SerializedError(title=event.message, root_title=event.message),
            raw_content=event.raw_content if event.raw_content is not None else UNSET,
        )
    raise TypeError(f"unexpected generation event {event!r}")  # pragma: no cover


@TABLE.channel(llm_ep.PREDICT)
async def predict(context: ChannelContext, parameter: llm_ep.PredictCreationParameter) -> None:
    _check_preset(parameter.fuzzy_preset_identifier)
    catalog = context.server.catalog
    instance = catalog.resolve("llm", parameter.model_specifier)
    settings = read_prediction_config(parameter.prediction_config_stack)
    messages = _chat_messages(context, parameter.history, settings)
    with catalog.use(instance):
        prompt = await _render_prompt(
            context,
            instance,
            parameter.history,
            settings,
            tools=list(settings.tools),
            messages=messages,
        )
    # The chat goes along unless a completion template turned it into raw text.
    is_chat = settings.jinja_template is None and settings.manual_template is None
    await _predict(context, instance, prompt, settings, messages if is_chat else None)


@TABLE.channel(llm_ep.COMPLETE_RAW_TEXT)
async def complete_raw_text(
    context: ChannelContext, parameter: llm_ep.CompleteRawTextCreationParameter
) -> None:
    _check_preset(parameter.fuzzy_preset_identifier)
    instance = context.server.catalog.resolve("llm", parameter.model_specifier)
    settings = read_prediction_config(parameter.prediction_config_stack, tools_allowed=False)
    await _predict(context, instance, parameter.raw_prompt, settings)


@TABLE.rpc(llm_ep.APPLY_PROMPT_TEMPLATE)
async def apply_prompt_template(
    context: CallContext, parameter: llm_ep.ApplyPromptTemplateParameter
) -> llm_ep.ApplyPromptTemplateResult:
    catalog = context.server.catalog
    instance = catalog.resolve("llm", parameter.specifier)
    settings = read_prediction_config(parameter.prediction_config_stack)
    opts = parameter.opts
    tools: list[Mapping[str, Any]] = (
        [unstructure(tool, LLMTool) for tool in opts.tool_definitions]
        if isinstance(opts.tool_definitions, list)
        else list(settings.tools)
    )
    with catalog.use(instance):
        formatted = await _render_prompt(
            context,
            instance,
            parameter.history,
            settings,
            tools=tools,
            omit_bos_token=opts.omit_bos_token is True,
            omit_eos_token=opts.omit_eos_token is True,
        )
    return llm_ep.ApplyPromptTemplateResult(formatted)
