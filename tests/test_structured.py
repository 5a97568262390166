"""Structured output: response formats become a wire setting and a parser of the reply."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Any, Literal, Optional

import attrs
import jsonschema
import pydantic
import pytest

from lmstudio_sdk._structured import json_schema_for_class, response_format
from lmstudio_sdk.errors import StructuredOutputError


class Genre(enum.Enum):
    NOVEL = "novel"
    ESSAY = "essay"


@attrs.define
class Author:
    name: str
    born: int | None = None


@attrs.define
class AttrsBook:
    title: str
    pages: int
    authors: list[Author]
    genre: Genre
    rating: float = 0.0
    format: Literal["paper", "ebook"] = "paper"
    tags: dict[str, bool] = attrs.Factory(dict)
    sequel: Optional[AttrsBook] = None  # noqa: UP045 - Optional spelled out on purpose


@dataclasses.dataclass
class DataBook:
    title: str
    pages: int
    authors: list[Author]
    isbn: str | None = None
    dimensions: tuple[float, float] = (0.0, 0.0)


class PydanticBook(pydantic.BaseModel):
    title: str
    pages: int = pydantic.Field(ge=1)


GOOD_ATTRS_REPLY = json.dumps(
    {
        "title": "Dune",
        "pages": 412,
        "authors": [{"name": "Frank Herbert", "born": 1920}],
        "genre": "novel",
        "rating": 5,
        "tags": {"classic": True},
        "sequel": {"title": "Dune Messiah", "pages": 256, "authors": [], "genre": "novel"},
    }
)


def test_pydantic_model_round_trip() -> None:
    setting, parser = response_format(PydanticBook)
    assert setting == {"type": "json", "jsonSchema": PydanticBook.model_json_schema()}
    assert parser is not None
    book = parser('{"title": "Dune", "pages": 412}')
    assert book == PydanticBook(title="Dune", pages=412)


def test_pydantic_validation_failure_keeps_the_raw_text() -> None:
    _, parser = response_format(PydanticBook)
    assert parser is not None
    reply = '{"title": "Dune", "pages": 0}'
    with pytest.raises(StructuredOutputError, match=r"PydanticBook.*pages") as info:
        parser(reply)
    assert info.value.raw_text == reply


def test_attrs_class_round_trip() -> None:
    setting, parser = response_format(AttrsBook)
    assert setting["type"] == "json"
    assert parser is not None
    book = parser(GOOD_ATTRS_REPLY)
    assert book == AttrsBook(
        title="Dune",
        pages=412,
        authors=[Author("Frank Herbert", 1920)],
        genre=Genre.NOVEL,
        rating=5.0,
        tags={"classic": True},
        sequel=AttrsBook(title="Dune Messiah", pages=256, authors=[], genre=Genre.NOVEL),
    )
    assert isinstance(book.rating, float)


def test_dataclass_round_trip() -> None:
    _, parser = response_format(DataBook)
    assert parser is not None
    book = parser('{"title": "T", "pages": 3, "authors": [{"name": "A"}], "dimensions": [1, 2.5]}')
    assert book == DataBook("T", 3, [Author("A")], None, (1.0, 2.5))


def test_generated_schemas_are_valid_and_describe_the_class() -> None:
    schema = json_schema_for_class(AttrsBook)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["required"] == ["title", "pages", "authors", "genre"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["title"] == {"type": "string"}
    assert props["pages"] == {"type": "integer"}
    assert props["rating"] == {"type": "number"}
    assert props["genre"] == {"enum": ["novel", "essay"]}
    assert props["format"] == {"enum": ["paper", "ebook"]}
    assert props["tags"] == {"type": "object", "additionalProperties": {"type": "boolean"}}
    assert props["authors"] == {"type": "array", "items": {"$ref": "#/$defs/Author"}}
    assert props["sequel"] == {"anyOf": [{"$ref": "#"}, {"type": "null"}]}
    assert schema["$defs"]["Author"]["required"] == ["name"]
    # The schema accepts the good reply and refuses a wrong one.
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(json.loads(GOOD_ATTRS_REPLY))
    assert not validator.is_valid({"title": "x"})

    data_schema = json_schema_for_class(DataBook)
    jsonschema.Draft202012Validator.check_schema(data_schema)
    assert data_schema["required"] == ["title", "pages", "authors"]
    assert data_schema["properties"]["dimensions"]["prefixItems"] == [
        {"type": "number"},
        {"type": "number"},
    ]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"title": "x", "pages": "412", "authors": [], "genre": "novel"}', r"\$\.pages"),
        ('{"title": "x", "pages": true, "authors": [], "genre": "novel"}', r"boolean @ \$\.pages"),
        ('{"title": "x", "pages": 1, "authors": [], "genre": "poem"}', r"\$\.genre"),
        (
            '{"title": "x", "pages": 1, "authors": [{}], "genre": "novel"}',
            r"\$\.authors\[0\]\.name",
        ),
        ('{"title": "x", "pages": 1, "authors": "Frank", "genre": "novel"}', "JSON array"),
        (
            '{"title": "x", "pages": 1, "authors": [], "genre": "novel", "isbn": "1"}',
            "extra fields",
        ),
        (
            '{"title": "x", "pages": 1, "authors": [], "genre": "novel", "format": "scroll"}',
            "one of",
        ),
        ('{"title": "x"}', "required field missing"),
        ("[1, 2]", "expected a JSON object"),
        ("The book is Dune.", "not valid JSON"),
        ('{"title": "x", ', "not valid JSON"),
    ],
)
def test_a_reply_that_does_not_fit_raises_with_the_raw_text(reply: str, problem: str) -> None:
    _, parser = response_format(AttrsBook)
    assert parser is not None
    with pytest.raises(StructuredOutputError, match=problem) as info:
        parser(reply)
    assert info.value.raw_text == reply


def test_integral_floats_are_integers_but_fractions_are_not() -> None:
    _, parser = response_format(DataBook)
    assert parser is not None
    assert parser('{"title": "T", "pages": 3.0, "authors": []}').pages == 3
    with pytest.raises(StructuredOutputError, match="pages"):
        parser('{"title": "T", "pages": 3.5, "authors": []}')


def test_a_plain_schema_parses_to_json_values_and_validates() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    setting, parser = response_format(schema)
    assert setting == {"type": "json", "jsonSchema": schema}
    assert parser is not None
    assert parser('{"answer": 42}') == {"answer": 42}
    with pytest.raises(StructuredOutputError, match="answer") as info:
        parser('{"answer": "forty-two"}')
    assert info.value.raw_text == '{"answer": "forty-two"}'


def test_the_schema_is_copied() -> None:
    schema: dict[str, Any] = {"type": "object"}
    setting, _ = response_format(schema)
    schema["type"] = "array"
    assert setting["jsonSchema"] == {"type": "object"}


def test_json_and_gbnf_settings() -> None:
    setting, parser = response_format({"type": "json", "json_schema": {"type": "array"}})
    assert setting == {"type": "json", "jsonSchema": {"type": "array"}}
    assert parser is not None
    assert parser("[1]") == [1]
    with pytest.raises(StructuredOutputError):
        parser("{}")

    setting, parser = response_format({"type": "json"})
    assert setting == {"type": "json"}
    assert parser is not None
    assert parser('"anything"') == "anything"

    grammar = 'root ::= "yes" | "no"'
    setting, parser = response_format({"type": "gbnf", "gbnfGrammar": grammar})
    # A grammar's output need not be JSON: nothing to parse.
    assert (setting, parser) == ({"type": "gbnf", "gbnfGrammar": grammar}, None)
    assert response_format({"type": "none"}) == ({"type": "none"}, None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (42, "response_format must be a JSON schema dict, a pydantic model class"),
        (str, "response_format must be"),
        (DataBook("t", 1, []), "takes a class, not an instance"),
        ({"type": "gbnf"}, "needs 'gbnfGrammar'"),
        ({"type": "json", "schema": {}}, "unknown key 'schema'"),
        ({"type": "json", "jsonSchema": "object"}, "JSON schema dict"),
        ({"type": "object", "properties": {"a": object()}}, "not JSON-serialisable"),
        ({"type": "object", "required": "a"}, "not a valid JSON schema"),
    ],
)
def test_bad_response_formats_raise_value_error(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        response_format(spec)


def test_unsupported_field_types_are_named() -> None:
    @dataclasses.dataclass
    class Event:
        when: datetime.datetime

    with pytest.raises(ValueError, match=r"Event\.when.*datetime"):
        response_format(Event)

    @dataclasses.dataclass
    class Scores:
        by_id: dict[int, float]

    with pytest.raises(ValueError, match=r"Scores\.by_id.*keys are strings"):
        response_format(Scores)
