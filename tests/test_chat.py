"""Chat histories: building, role rules, input forms, and the wire form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lmstudio_sdk.chat import Chat, FileHandle
from lmstudio_sdk.config import LoadModelConfig, PredictionConfig
from lmstudio_sdk.protocol.codec import structure, unstructure
from lmstudio_sdk.protocol.endpoints.shared import (
    AssistantMessage,
    ChatHistoryData,
    FilePart,
    TextPart,
    ToolMessage,
    UserMessage,
)
from lmstudio_sdk.results import (
    ModelInstanceInfo,
    PredictionResult,
    PredictionStats,
    ToolCallRequest,
)

SCHEMAS = Path(__file__).parent / "schemas"


def _lenient(schema: Any) -> Any:
    """Drop ``additionalProperties: false`` (an export artifact, PROTOCOL.md section 8)."""
    if isinstance(schema, dict):
        return {
            k: _lenient(v)
            for k, v in schema.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(schema, list):
        return [_lenient(v) for v in schema]
    return schema


_LMS = json.loads((SCHEMAS / "js-head-lms.json").read_text())
HISTORY_SCHEMA = jsonschema.Draft7Validator(
    {"$ref": "#/definitions/chatHistoryData", "definitions": _lenient(_LMS["definitions"])}
)

IMAGE = FileHandle(name="cat.png", identifier="file-1", size_bytes=1234, file_type="image")
PDF = FileHandle(name="doc.pdf", identifier="file-2", size_bytes=99, file_type="application/pdf")
ADD = ToolCallRequest("add", {"a": 1, "b": 2}, "call_1")


def full_chat() -> Chat:
    chat = Chat("You are terse.")
    chat.add_user_message("What is in this picture?", images=[IMAGE], files=[PDF])
    chat.add_assistant_response("A cat. Let me add.", tool_call_requests=[ADD])
    chat.add_tool_result(3, request=ADD)
    chat.add_assistant_response("3")
    return chat


def test_wire_form_is_valid_chat_history_data() -> None:
    data = full_chat().to_dict()
    HISTORY_SCHEMA.validate(data)
    assert data == {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "name": "cat.png",
                        "identifier": "file-1",
                        "sizeBytes": 1234,
                        "fileType": "image",
                    },
                    {
                        "type": "file",
                        "name": "doc.pdf",
                        "identifier": "file-2",
                        "sizeBytes": 99,
                        "fileType": "application/pdf",
                    },
                    {"type": "text", "text": "What is in this picture?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "A cat. Let me add."},
                    {
                        "type": "toolCallRequest",
                        "toolCallRequest": {
                            "type": "function",
                            "name": "add",
                            "id": "call_1",
                            "arguments": {"a": 1, "b": 2},
                        },
                    },
                ],
            },
            {
                "role": "tool",
                "content": [
                    {
                        "type": "toolCallResult",
                        "content": "3",
                        "toolCallId": "call_1",
                        "name": "add",
                    }
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "3"}]},
        ]
    }


def test_round_trips_through_the_wire_form() -> None:
    chat = full_chat()
    assert Chat.from_history(chat.to_dict()) == chat
    # As the server would decode it: JSON text, then the wire classes.
    wire = structure(json.loads(json.dumps(chat.to_dict())), ChatHistoryData)
    assert wire == chat.to_wire()
    assert Chat.from_history(wire) == chat
    assert unstructure(Chat.from_history(wire).to_wire()) == chat.to_dict()


def test_iteration_len_and_indexing() -> None:
    chat = full_chat()
    assert len(chat) == 5
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool", "assistant"]
    assert isinstance(chat[1], UserMessage)
    assert chat[-1] == AssistantMessage([TextPart("3")])
    assert [m.role for m in chat[1:3]] == ["user", "assistant"]


def test_copies_are_independent() -> None:
    chat = full_chat()
    copy = chat.copy()
    copy.add_user_message("And now?")
    assert len(copy) == len(chat) + 1
    from_chat = Chat.from_history(chat)
    from_chat.add_tool_result("x")
    assert len(chat) == 5
    wire = chat.to_wire()
    chat.add_user_message("later")
    assert len(wire.messages) == 5


def test_a_string_is_one_user_message() -> None:
    chat = Chat.from_history("Hi")
    assert chat.to_dict() == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    }


def test_list_of_role_content_dicts() -> None:
    chat = Chat.from_history(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi!"},
            {"content": "No role means user."},
        ]
    )
    assert [(m.role, m.content) for m in chat] == [
        ("system", [TextPart("Be brief.")]),
        ("user", [TextPart("Hello")]),
        ("assistant", [TextPart("Hi!")]),
        ("user", [TextPart("No role means user.")]),
    ]


def test_js_style_message_with_images() -> None:
    image = {"name": "cat.png", "identifier": "file-1", "sizeBytes": 1234, "fileType": "image"}
    chat = Chat.from_history([{"role": "user", "content": "Describe it", "images": [image]}])
    assert chat[0].content == [IMAGE.to_part(), TextPart("Describe it")]


def test_openai_style_tool_calls() -> None:
    chat = Chat.from_history(
        [
            {"role": "user", "content": "1+2?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        ]
    )
    data = chat.to_dict()
    HISTORY_SCHEMA.validate(data)
    assert data["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "toolCallRequest",
                "toolCallRequest": {
                    "type": "function",
                    "name": "add",
                    "id": "call_1",
                    "arguments": {"a": 1, "b": 2},
                },
            }
        ],
    }
    assert data["messages"][2] == {
        "role": "tool",
        "content": [{"type": "toolCallResult", "content": "3", "toolCallId": "call_1"}],
    }


def test_python_sdk_style_history_dict() -> None:
    history = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {
                "role": "tool",
                "content": [{"type": "toolCallResult", "content": "1", "tool_call_id": "c"}],
            },
        ]
    }
    chat = Chat.from_history(history)
    assert chat.to_dict()["messages"][1]["content"] == [
        {"type": "toolCallResult", "content": "1", "toolCallId": "c"}
    ]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "toolCallRequest", "toolCallRequest": {"name": "f"}}],
                }
            ],
            "a user message cannot hold a toolCallRequest part.*assistant",
        ),
        (
            [{"role": "system", "content": [{"type": "toolCallResult", "content": "1"}]}],
            "a system message cannot hold a toolCallResult part",
        ),
        (
            [{"role": "tool", "content": [{"type": "text", "text": "1"}]}],
            "a tool message cannot hold a text part",
        ),
        ([{"role": "user", "content": "x", "tool_calls": []}], "tool_calls belong in assistant"),
        ([{"role": "bot", "content": "x"}], "unknown role 'bot'"),
        ([{"role": "user", "text": "x"}], "unknown message keys"),
        ([{"role": "user", "content": [{"type": "video"}]}], "unknown message part type 'video'"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:..."}}],
                }
            ],
            "prepare_image",
        ),
        ([{"role": "user", "content": 5}], "a str or a list of parts"),
        ([{"role": "user", "content": [{"type": "file", "name": "x"}]}], "identifier"),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
            "not valid JSON",
        ),
    ],
)
def test_role_rules_and_bad_messages_are_clear_errors(
    messages: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Chat.from_history(messages)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ({"turns": []}, "needs a 'messages' list"),
        ({"messages": "Hi"}, "must be a list of messages"),
        (42, "a chat history is a str"),
    ],
)
def test_bad_histories(history: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chat.from_history(history)


def test_errors_name_the_message_index() -> None:
    with pytest.raises(ValueError, match="message 1:"):
        Chat.from_history([{"role": "user", "content": "ok"}, {"role": "nobody", "content": "x"}])


def test_images_must_be_uploaded_images() -> None:
    chat = Chat()
    with pytest.raises(ValueError, match=r"prepare_image"):
        chat.add_user_message("x", images=["cat.png"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="list of FileHandle"):
        chat.add_user_message("x", images=IMAGE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'doc.pdf' is not an image.*files="):
        chat.add_user_message("x", images=[PDF])
    assert len(chat) == 0


def test_file_handles_and_parts() -> None:
    part = IMAGE.to_part()
    assert part == FilePart("cat.png", "file-1", 1234, "image")
    assert FileHandle.from_part(part) == IMAGE
    assert IMAGE.is_image
    assert not PDF.is_image
    only_files = Chat()
    only_files.add_user_message(images=[IMAGE])
    assert only_files[0].content == [part]


def test_tool_results_go_in_one_message_in_order() -> None:
    chat = Chat()
    chat.add_assistant_response(
        "", tool_call_requests=[ADD, ToolCallRequest("mul", {"a": 2}, "call_2")]
    )
    chat.add_tool_result({"sum": 3}, request=ADD)
    chat.add_tool_result("six", tool_call_id="call_2", name="mul")
    chat.add_tool_result(None)
    assert len(chat) == 2
    assert isinstance(chat[1], ToolMessage)
    assert unstructure(chat[1].content) == [
        {"type": "toolCallResult", "content": '{"sum": 3}', "toolCallId": "call_1", "name": "add"},
        {"type": "toolCallResult", "content": "six", "toolCallId": "call_2", "name": "mul"},
        {"type": "toolCallResult", "content": "null"},
    ]
    HISTORY_SCHEMA.validate(chat.to_dict())


def test_bad_tool_results() -> None:
    chat = Chat()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        chat.add_tool_result(object())
    with pytest.raises(ValueError, match="not both"):
        chat.add_tool_result("x", request=ADD, tool_call_id="other")
    with pytest.raises(ValueError, match="tool_call_id must be a str"):
        chat.add_tool_result("x", tool_call_id=5)  # type: ignore[arg-type]


def test_adding_a_prediction_result_keeps_its_text_and_tool_calls() -> None:
    model = ModelInstanceInfo(
        type="llm",
        model_key="m",
        format="gguf",
        display_name="M",
        path="p/m.gguf",
        size_bytes=1,
        identifier="m",
        instance_reference="ref",
        context_length=4096,
    )
    result = PredictionResult(
        content="<think>hmm</think>Calling add.",
        reasoning_content="hmm",
        non_reasoning_content="Calling add.",
        stats=PredictionStats(stop_reason="toolCalls"),
        model_info=model,
        load_config=LoadModelConfig(),
        prediction_config=PredictionConfig(),
        tool_call_requests=(ADD,),
    )
    chat = Chat()
    message = chat.add_assistant_response(result)
    # As the JS SDK does in act(): all text, reasoning included, then the tool calls.
    assert unstructure(message) == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "<think>hmm</think>Calling add."},
            {
                "type": "toolCallRequest",
                "toolCallRequest": {
                    "type": "function",
                    "name": "add",
                    "id": "call_1",
                    "arguments": {"a": 1, "b": 2},
                },
            },
        ],
    }


def test_text_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="must be a str"):
        Chat(system_prompt=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a str"):
        Chat().add_assistant_response(b"bytes")  # type: ignore[arg-type]


def test_tool_call_requests_without_id_or_arguments() -> None:
    chat = Chat.from_history(
        [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "toolCallRequest",
                        "toolCallRequest": {"type": "function", "name": "now"},
                    }
                ],
            }
        ]
    )
    data = chat.to_dict()
    HISTORY_SCHEMA.validate(data)
    assert data["messages"][0]["content"][0]["toolCallRequest"] == {
        "type": "function",
        "name": "now",
        "arguments": {},
    }


def test_text_of_a_message_is_its_text_parts_and_of_a_tool_message_its_results() -> None:
    chat = Chat("Be brief.")
    chat.append({"role": "user", "content": [{"type": "text", "text": "Hello, "}, "world"]})
    chat.add_assistant_response("Hi!")
    chat.add_tool_result({"temperature": 21}, tool_call_id="c1", name="weather")
    chat.add_tool_result("sunny", tool_call_id="c2", name="sky")
    system, user, assistant, tool = chat
    assert system.text == "Be brief."
    assert user.text == "Hello, world"
    assert assistant.text == "Hi!"
    assert tool.text == '{"temperature": 21}\nsunny'
    # .text is not a wire field: it is not sent.
    assert "text" not in chat.to_dict()["messages"][3]
