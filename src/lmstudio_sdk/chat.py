"""Chat histories: what a prediction is asked to continue.

A :class:`Chat` is a list of messages with roles ``system``, ``user``, ``assistant`` and
``tool``. Which parts a message may hold depends on its role (PROTOCOL.md 4.3): text and
files for ``system``/``user``, those plus tool call requests for ``assistant``, and only
tool results for ``tool``. The rules are checked as messages are added, so a bad history
fails here with a clear ``ValueError`` instead of being silently ignored by the server.

Files (images) are uploaded first (``client.files.prepare_image(...)``), which gives a
:class:`FileHandle`; the chat refers to the upload by its identifier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import attrs

from .protocol._unset import UNSET
from .protocol.codec import Unknown, unstructure
from .protocol.endpoints.shared import (
    AssistantMessage,
    ChatHistoryData,
    FilePart,
    SystemMessage,
    TextPart,
    ToolCallRequestPart,
    ToolCallResultPart,
    ToolMessage,
    UserMessage,
)
from .protocol.endpoints.shared import ToolCallRequest as WireToolCallRequest
from .protocol.naming import to_camel
from .results import PredictionResult, ToolCallRequest

__all__ = ["Chat", "ChatHistoryInput", "FileHandle", "Message"]

Message = UserMessage | SystemMessage | AssistantMessage | ToolMessage
"""A message of a :class:`Chat` (the wire classes: ``role`` and a ``content`` list)."""


_ROLES = ("system", "user", "assistant", "tool")
_ALLOWED_PARTS: dict[str, tuple[type, ...]] = {
    "system": (TextPart, FilePart),
    "user": (TextPart, FilePart),
    "assistant": (TextPart, FilePart, ToolCallRequestPart),
    "tool": (ToolCallResultPart,),
}
_PART_NAMES = {
    TextPart: "text",
    FilePart: "file",
    ToolCallRequestPart: "toolCallRequest",
    ToolCallResultPart: "toolCallResult",
}
_MESSAGE_CLASSES: dict[str, Any] = {
    "system": SystemMessage,
    "user": UserMessage,
    "assistant": AssistantMessage,
    "tool": ToolMessage,
}


@attrs.frozen(kw_only=True)
class FileHandle:
    """A file uploaded to the server, as ``client.files.prepare_image()`` returns it.

    ``file_type`` is ``image``, ``text/plain``, ``application/pdf``, ``application/word``,
    ``text/other`` or ``unknown``. Uploads belong to the client that made them.
    """

    name: str
    identifier: str
    size_bytes: int
    file_type: str

    @property
    def is_image(self) -> bool:
        """Whether the server took the file for an image."""
        return self.file_type == "image"

    def to_part(self) -> FilePart:
        """The chat message part that refers to this file."""
        return FilePart(self.name, self.identifier, self.size_bytes, self.file_type)

    @classmethod
    def from_part(cls, part: FilePart) -> FileHandle:
        """The handle a ``file`` message part refers to."""
        return cls(
            name=part.name,
            identifier=part.identifier,
            size_bytes=part.size_bytes,
            file_type=part.file_type,
        )


class Chat:
    """A conversation to predict the next assistant message of.

    ``Chat("You are terse.")`` starts with a system prompt. Add messages with
    :meth:`add_user_message`, :meth:`add_assistant_response` and :meth:`add_tool_result`;
    build one from other forms with :meth:`from_history`. Iterating gives the messages;
    :meth:`to_wire` and :meth:`to_dict` give the ``ChatHistoryData`` the server takes.
    """

    def __init__(self, system_prompt: str | None = None) -> None:
        self._messages: list[Message] = []
        if system_prompt is not None:
            self.add_system_prompt(system_prompt)

    # --- building ---------------------------------------------------------------------

    @classmethod
    def from_history(
        cls, history: Chat | str | ChatHistoryData | Mapping[str, Any] | Sequence[Any]
    ) -> Chat:
        """Build a chat from any of these (the result shares nothing with the input):

        * a ``str``: one user message;
        * another :class:`Chat`, or a wire ``ChatHistoryData``;
        * a dict ``{"messages": [...]}`` (the wire form, as the official SDKs write it);
        * a list of messages: wire message objects, or dicts ``{"role": ..., "content":
          ...}`` where ``content`` is a string or a list of parts (LM Studio wire parts,
          or OpenAI-style ``{"type": "text", "text": ...}``); OpenAI-style assistant
          ``tool_calls`` and tool ``tool_call_id`` are understood too. A message without
          a role is a user message.
        """
        chat = cls()
        if isinstance(history, Chat):
            chat._messages = [_copy_message(m) for m in history._messages]
        elif isinstance(history, str):
            chat.add_user_message(history)
        elif isinstance(history, ChatHistoryData):
            for message in history.messages:
                chat.append(message)
        elif isinstance(history, Mapping):
            if "messages" not in history:
                raise ValueError(
                    "a chat history dict needs a 'messages' list, e.g. "
                    "{'messages': [{'role': 'user', 'content': 'Hi'}]}; "
                    f"got the keys {sorted(map(str, history))}"
                )
            chat._extend(history["messages"])
        elif isinstance(history, Sequence) and not isinstance(history, (bytes, bytearray)):
            chat._extend(history)
        else:
            raise ValueError(
                "a chat history is a str, a Chat, a ChatHistoryData, a {'messages': [...]} "
                f"dict or a list of messages; got {type(history).__name__}"
            )
        return chat

    def _extend(self, messages: Any) -> None:
        if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
            raise ValueError(f"'messages' must be a list of messages, got {messages!r}")
        for index, message in enumerate(messages):
            try:
                self.append(message)
            except ValueError as exc:
                raise ValueError(f"message {index}: {exc}") from None

    def append(self, message: Message | Unknown | Mapping[str, Any]) -> Message:
        """Add a message given as a wire message object or as a dict (see :meth:`from_history`)."""
        if isinstance(message, Unknown):
            raise ValueError(f"cannot use a message of unknown role {message.type!r}")
        if isinstance(message, (UserMessage, SystemMessage, AssistantMessage, ToolMessage)):
            return self._add(message.role, list(message.content))
        if isinstance(message, Mapping):
            role, parts = _message_from_dict(message)
            return self._add(role, parts)
        raise ValueError(
            f"a message is a dict {{'role': ..., 'content': ...}} or a wire message, "
            f"got {message!r}"
        )

    def add_system_prompt(self, text: str) -> SystemMessage:
        """Add a system message."""
        return self._add("system", [TextPart(_text(text, "a system prompt"))])  # type: ignore[return-value]

    def add_user_message(
        self,
        text: str = "",
        *,
        images: Sequence[FileHandle] = (),
        files: Sequence[FileHandle] = (),
    ) -> UserMessage:
        """Add a user message: ``text``, with uploaded ``images`` and ``files`` attached.

        The attachments come first, then the text, as the JS SDK orders them.
        """
        parts: list[Any] = [_file_part(f, "images", image=True) for f in _handles(images, "images")]
        parts += [_file_part(f, "files", image=False) for f in _handles(files, "files")]
        if text or not parts:
            parts.append(TextPart(_text(text, "a user message")))
        return self._add("user", parts)  # type: ignore[return-value]

    def add_assistant_response(
        self,
        response: str | PredictionResult,
        *,
        tool_call_requests: Sequence[ToolCallRequest | WireToolCallRequest] = (),
    ) -> AssistantMessage:
        """Add the model's answer: text, or a :class:`PredictionResult` (its ``content``
        and the tool calls it made), plus any further ``tool_call_requests``."""
        if isinstance(response, PredictionResult):
            text = response.content
            requests: list[Any] = [*response.tool_call_requests, *tool_call_requests]
        else:
            text = _text(response, "an assistant response")
            requests = list(tool_call_requests)
        parts: list[Any] = [TextPart(text)]
        parts += [ToolCallRequestPart(_wire_request(r)) for r in requests]
        return self._add("assistant", parts)  # type: ignore[return-value]

    def add_tool_result(
        self,
        content: Any,
        *,
        request: ToolCallRequest | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
    ) -> ToolMessage:
        """Add a tool's result, answering ``request`` (or the call ``tool_call_id``).

        A ``str`` is sent as it is; any other value is JSON-encoded (the protocol carries
        results as JSON text). Results added one after the other go into one ``tool``
        message, in the order added (list them in the order of the requests).
        """
        if request is not None:
            if tool_call_id is not None or name is not None:
                raise ValueError("give either request= or tool_call_id=/name=, not both")
            tool_call_id, name = request.id, request.name
        part = ToolCallResultPart(
            _result_text(content),
            _unset_if_none(tool_call_id, "tool_call_id"),
            _unset_if_none(name, "name"),
        )
        last = self._messages[-1] if self._messages else None
        if isinstance(last, ToolMessage):
            merged = ToolMessage([*last.content, part])
            self._messages[-1] = merged
            return merged
        return self._add("tool", [part])  # type: ignore[return-value]

    def _add(self, role: str, parts: list[Any]) -> Message:
        allowed = _ALLOWED_PARTS[role]
        for part in parts:
            if not isinstance(part, allowed):
                kind = _PART_NAMES.get(type(part), type(part).__name__)
                names = ", ".join(_PART_NAMES[a] for a in allowed)
                raise ValueError(
                    f"a {role} message cannot hold a {kind} part (allowed: {names})"
                    + _role_hint(role, kind)
                )
        message: Message = _MESSAGE_CLASSES[role](parts)
        self._messages.append(message)
        return message

    # --- reading ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self._messages[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chat):
            return NotImplemented
        return self._messages == other._messages

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Chat.from_history({self.to_dict()!r})"

    def copy(self) -> Chat:
        """An independent copy: changing one chat does not change the other."""
        return Chat.from_history(self)

    def to_wire(self) -> ChatHistoryData:
        """The wire ``ChatHistoryData`` (a snapshot: later changes do not affect it)."""
        return ChatHistoryData([_copy_message(m) for m in self._messages])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``{"messages": [...]}``, camelCase keys as on the wire."""
        data: dict[str, Any] = unstructure(self.to_wire(), ChatHistoryData, what="chat history")
        return data


ChatHistoryInput = Chat | str | ChatHistoryData | Mapping[str, Any] | Sequence[Any]
"""What :meth:`Chat.from_history` accepts."""


# --- helpers -------------------------------------------------------------------------------


def _copy_message(message: Any) -> Any:
    return type(message)(list(message.content))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the text of {what} must be a str, got {value!r}")
    return value


def _unset_if_none(value: Any, what: str) -> Any:
    if value is None:
        return UNSET
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {value!r}")
    return value


def _role_hint(role: str, kind: str) -> str:
    if kind == "toolCallRequest":
        return "; tool call requests belong in assistant messages"
    if kind == "toolCallResult":
        return "; tool results go in a tool message (Chat.add_tool_result)"
    if role == "tool":
        return "; a tool message holds only tool results"
    return ""


def _handles(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, FileHandle, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{what} must be a list of FileHandle objects, got {value!r}")
    return value


def _file_part(value: Any, what: str, *, image: bool) -> FilePart:
    if isinstance(value, FilePart):
        handle = FileHandle.from_part(value)
    elif isinstance(value, FileHandle):
        handle = value
    elif isinstance(value, Mapping):
        handle = _handle_from_dict(value)
    else:
        raise ValueError(
            f"{what} takes FileHandle objects, got {value!r}: upload the file first with "
            "client.files.prepare_image(path_or_bytes) and pass what it returns"
        )
    if image and not handle.is_image:
        raise ValueError(
            f"{handle.name!r} is not an image (the server says {handle.file_type!r}); "
            "pass it in files= instead"
        )
    return handle.to_part()


def _handle_from_dict(value: Mapping[str, Any]) -> FileHandle:
    data = {to_camel(str(k)): v for k, v in value.items()}
    try:
        name, identifier = data["name"], data["identifier"]
        size_bytes, file_type = data["sizeBytes"], data["fileType"]
    except KeyError as exc:
        raise ValueError(
            f"a file part needs name, identifier, sizeBytes and fileType; {exc} is missing"
        ) from None
    if not (
        isinstance(name, str)
        and isinstance(identifier, str)
        and isinstance(file_type, str)
        and isinstance(size_bytes, int)
        and not isinstance(size_bytes, bool)
    ):
        raise ValueError(f"a file part has the wrong value types: {dict(value)!r}")
    return FileHandle(name=name, identifier=identifier, size_bytes=size_bytes, file_type=file_type)


def _wire_request(value: Any) -> WireToolCallRequest:
    if isinstance(value, WireToolCallRequest):
        return value
    if isinstance(value, ToolCallRequest):
        return value.to_wire()
    if isinstance(value, Mapping):
        return _request_from_dict(value)
    raise ValueError(f"a tool call request is a ToolCallRequest or a dict, got {value!r}")


def _request_from_dict(value: Mapping[str, Any]) -> WireToolCallRequest:
    # LM Studio form {"type": "function", "name", "id"?, "arguments"?} or the OpenAI form
    # {"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}.
    function = value.get("function")
    if isinstance(function, Mapping):
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = value.get("name"), value.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"tool call arguments are not valid JSON: {exc}") from None
    if not isinstance(name, str):
        raise ValueError(f"a tool call request needs a function name, got {dict(value)!r}")
    if arguments is not None and not isinstance(arguments, dict):
        raise ValueError(f"tool call arguments must be a JSON object, got {arguments!r}")
    call_id = value.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise ValueError(f"a tool call id must be a str, got {call_id!r}")
    return ToolCallRequest(name, arguments or {}, call_id).to_wire()


def tool_result_json(value: Any) -> str:
    """``value`` as the JSON text of a tool result: non-ASCII kept as is; NaN and
    infinities (not JSON) raise ``ValueError``, other values JSON cannot hold ``TypeError``."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    try:
        return tool_result_json(content)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"a tool result must be a str or JSON-serialisable, got {content!r} ({exc})"
        ) from None


def _part_from_value(value: Any, role: str) -> Any:
    """One content part from a wire part, a FileHandle, a ToolCallRequest, str or dict."""
    if isinstance(value, (TextPart, FilePart, ToolCallRequestPart, ToolCallResultPart)):
        return value
    if isinstance(value, str):
        return TextPart(value)
    if isinstance(value, FileHandle):
        return value.to_part()
    if isinstance(value, (ToolCallRequest, WireToolCallRequest)):
        return ToolCallRequestPart(_wire_request(value))
    if not isinstance(value, Mapping):
        raise ValueError(f"cannot make a message part of {value!r}")
    data = {to_camel(str(k)): v for k, v in value.items()}
    kind = data.get("type")
    if kind == "text" or (kind is None and "text" in data):
        return TextPart(_text(data.get("text"), f"a {role} text part"))
    if kind == "file":
        return _handle_from_dict(data).to_part()
    if kind == "toolCallRequest":
        return ToolCallRequestPart(_wire_request(data.get("toolCallRequest") or {}))
    if kind == "toolCallResult":
        return ToolCallResultPart(
            _result_text(data.get("content", "")),
            _unset_if_none(data.get("toolCallId"), "toolCallId"),
            _unset_if_none(data.get("name"), "name"),
        )
    if kind in ("image_url", "imageUrl", "image", "input_image", "inputImage"):
        raise ValueError(
            "image parts must refer to an uploaded file: upload it with "
            "client.files.prepare_image(...) and pass the FileHandle in images="
        )
    raise ValueError(f"unknown message part type {kind!r} in {dict(value)!r}")


def _message_from_dict(message: Mapping[str, Any]) -> tuple[str, list[Any]]:
    role = message.get("role", "user")
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(_ROLES)}")
    known = {"role", "content", "images", "files", "tool_calls", "toolCalls", "tool_call_id"}
    known |= {"toolCallId", "name"}
    extra = set(map(str, message)) - known
    if extra:
        raise ValueError(f"unknown message keys {sorted(extra)} in a {role} message")
    content = message.get("content")
    parts: list[Any] = []
    # Attachments first, then the content (the JS SDK's order for {content, images}).
    parts += [
        _file_part(f, "images", image=True) for f in _handles(message.get("images", ()), "images")
    ]
    parts += [
        _file_part(f, "files", image=False) for f in _handles(message.get("files", ()), "files")
    ]
    tool_call_id = message.get("tool_call_id", message.get("toolCallId"))
    if role == "tool" and (isinstance(content, str) or tool_call_id is not None):
        # OpenAI style: {"role": "tool", "tool_call_id": ..., "content": "..."}.
        parts.append(
            ToolCallResultPart(
                _result_text(content if content is not None else ""),
                _unset_if_none(tool_call_id, "tool_call_id"),
                _unset_if_none(message.get("name"), "name"),
            )
        )
    elif isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts += [_part_from_value(part, role) for part in content]
    elif content is not None:
        raise ValueError(f"message content must be a str or a list of parts, got {content!r}")
    tool_calls = message.get("tool_calls", message.get("toolCalls"))
    if tool_calls is not None:
        if role != "assistant":
            raise ValueError("tool_calls belong in assistant messages")
        if isinstance(tool_calls, (str, Mapping)) or not isinstance(tool_calls, Sequence):
            raise ValueError(f"tool_calls must be a list, got {tool_calls!r}")
        parts += [ToolCallRequestPart(_wire_request(call)) for call in tool_calls]
    return role, parts
