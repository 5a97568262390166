"""How the server reads the settings the llama.cpp engine honours (no model needed): the
presence penalty, the context overflow policy, and whole floats for integer settings (the
official Python client sends ``topKSampling`` as ``40.0``)."""

from __future__ import annotations

import pytest
from _server_helpers import stack

from lmstudio_sdk.errors import LMStudioServerError
from lmstudio_sdk.server._handlers._prediction import read_prediction_config

P = "llm.prediction."


def test_presence_penalty_and_overflow_policy_reach_the_engine_and_are_echoed() -> None:
    settings = read_prediction_config(
        stack(
            {
                P + "llama.presencePenalty": {"checked": True, "value": 1.5},
                P + "contextOverflowPolicy": "rollingWindow",
            }
        )
    )
    request = settings.generation_request("hi")
    assert request.presence_penalty == 1.5
    assert request.context_overflow == "rollingWindow"
    used = {field.key: field.value for field in settings.used.fields}
    assert used[P + "llama.presencePenalty"] == {"checked": True, "value": 1.5}
    assert used[P + "contextOverflowPolicy"] == "rollingWindow"


def test_defaults_leave_them_off() -> None:
    request = read_prediction_config(stack({})).generation_request("hi")
    assert request.presence_penalty is None
    assert request.context_overflow == "stopAtLimit"
    unchecked = stack({P + "llama.presencePenalty": {"checked": False, "value": 0}})
    assert read_prediction_config(unchecked).generation_request("hi").presence_penalty is None


def test_a_whole_float_is_taken_for_an_integer_setting() -> None:
    assert read_prediction_config(stack({P + "topKSampling": 40.0})).request["top_k"] == 40
    with pytest.raises(LMStudioServerError, match=r"topKSampling: 4\.5"):
        read_prediction_config(stack({P + "topKSampling": 4.5}))
    with pytest.raises(LMStudioServerError, match=r"topKSampling: 900\.0"):
        read_prediction_config(stack({P + "topKSampling": 900.0}))


def test_an_unknown_overflow_policy_is_a_clear_error() -> None:
    with pytest.raises(LMStudioServerError, match="contextOverflowPolicy"):
        read_prediction_config(stack({P + "contextOverflowPolicy": "dropEverything"}))


def test_log_probs_reach_the_engine_only_when_checked() -> None:
    settings = read_prediction_config(stack({P + "logProbs": {"checked": True, "value": 3}}))
    assert settings.generation_request("hi").log_probs == 3
    used = {field.key: field.value for field in settings.used.fields}
    assert used[P + "logProbs"] == {"checked": True, "value": 3}
    assert read_prediction_config(stack({})).generation_request("hi").log_probs is None
    unchecked = stack({P + "logProbs": {"checked": False, "value": 3}})
    assert read_prediction_config(unchecked).generation_request("hi").log_probs is None
    with pytest.raises(LMStudioServerError, match="logProbs"):
        read_prediction_config(stack({P + "logProbs": {"checked": True, "value": 101}}))


def test_log_probs_follow_the_tokens_into_the_pieces() -> None:
    from lmstudio_sdk.server.engines._llama_logprobs import attach_log_probs
    from lmstudio_sdk.server.engines.events import TokenLogProb, TokenPiece

    a, b, c = (TokenLogProb(i, t, -0.5) for i, t in enumerate("abc"))
    pending = [a, b, c]
    # Two tokens counted by the first piece, none by a split-off tag; one still held back.
    pieces = attach_log_probs([TokenPiece("ab", 2), TokenPiece("<t>", 0)], pending)
    assert [p.tokens for p in pieces] == [(a, b), ()]
    assert pending == [c]
    assert attach_log_probs([TokenPiece("c", 1)], pending)[0].tokens == (c,)
    assert pending == []
