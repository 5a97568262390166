"""Every prediction setting llama.cpp can honour, through the official clients, with its
effect on the real SmolLM2: ``official_settings.py`` (``lmstudio``) runs most of them once,
``official_settings.mjs`` (``@lmstudio/sdk``) the prediction seed and the presence penalty (as
raw KV fields: the Python client has no option for them) and log probabilities; one test per
setting judges its part.
Neither official client's stats carry the stop string; our SDK's do. Seeds and greedy decoding make the runs repeatable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from test_interop import HERE, LLM_KEY, TEST_TIMEOUT, run_passing_scenario

pytestmark = [pytest.mark.interop, pytest.mark.model]


@pytest.fixture(scope="module")
def results(
    interop_server: Any, python_client_command: list[str], js_client_command: list[str]
) -> dict[str, Any]:
    host = urlsplit(interop_server.url).netloc
    command = [python_client_command[0], str(HERE / "official_settings.py")]
    summary = run_passing_scenario([*command, "--host", host, "--llm", LLM_KEY])
    assert summary["clientLog"] == [], summary["clientLog"]
    js = run_passing_scenario(
        [
            js_client_command[0],
            str(HERE / "official_settings.mjs"),
            "--base-url",
            interop_server.url,
            "--llm",
            LLM_KEY,
        ]
    )
    assert js["sdkLog"] == [], js["sdkLog"]
    return {**summary["results"], "js": js["results"]}


@pytest.mark.timeout(TEST_TIMEOUT)
def test_temperature(results: dict[str, Any]) -> None:
    assert results["temperature"]["greedyTwice"] == [results["greedy"]]
    first, second = results["temperature"]["hot"]
    assert first != second, "two seeds at temperature 1.5 gave the same text"
    assert results["greedy"] not in (first, second)


@pytest.mark.timeout(TEST_TIMEOUT)
@pytest.mark.parametrize("setting", ["topK", "topP", "minP"])
def test_sampling_filters_narrowed_to_the_top_token_are_greedy(
    results: dict[str, Any], setting: str
) -> None:
    assert results[setting] == [results["greedy"]] * 2


@pytest.mark.timeout(TEST_TIMEOUT)
@pytest.mark.parametrize("setting", ["repeatPenalty", "presencePenalty"])
def test_penalties_cut_repetition(results: dict[str, Any], setting: str) -> None:
    plain, penalised = results[setting] if setting in results else results["js"][setting]
    assert plain != penalised
    assert penalised.lower().count("cat") < plain.lower().count("cat")


@pytest.mark.timeout(TEST_TIMEOUT)
def test_max_tokens(results: dict[str, Any]) -> None:
    assert results["maxTokens"]["predicted"] == 5
    assert results["maxTokens"]["stopReason"] == "maxPredictedTokensReached"
    assert results["greedy"].startswith(results["maxTokens"]["text"])


@pytest.mark.timeout(TEST_TIMEOUT)
def test_stop_strings(results: dict[str, Any]) -> None:
    stopped = results["stopStrings"]
    assert stopped["stopReason"] == "stopStringFound"
    assert stopped["stop"] not in stopped["text"]
    assert results["greedy"].startswith(stopped["text"] + stopped["stop"])
    js = results["js"]["stopStrings"]
    assert (js["text"], js["stopReason"]) == (stopped["text"], "stopStringFound")


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_stop_string_is_named_in_the_stats(interop_server: Any) -> None:
    # Neither official client's stats type has the field; ours reads it.
    from lmstudio_sdk import AsyncClient

    async with AsyncClient(interop_server.url) as client:
        model = await client.llm.model(LLM_KEY)
        result = await model.respond(
            "Write one short sentence about the sea.",
            temperature=0,
            max_tokens=24,
            stop_strings=["is"],
        )
    assert result.stop_reason == "stopStringFound"
    assert result.stats.stop_string == "is"
    assert "is" not in result.content


@pytest.mark.timeout(TEST_TIMEOUT)
def test_seed(results: dict[str, Any]) -> None:
    same, again, other = results["js"]["seed"]
    assert same == again
    assert other != same


@pytest.mark.timeout(TEST_TIMEOUT * 2)
def test_load_seed_is_the_instances_sampling_seed(
    interop_server: Any, python_client_command: list[str], results: dict[str, Any]
) -> None:
    # Official Python client: instances loaded with seed 11, 11 and 12, two hot replies each.
    host = urlsplit(interop_server.url).netloc
    command = [python_client_command[0], str(HERE / "official_settings.py"), "--host", host]
    summary = run_passing_scenario([*command, "--llm", LLM_KEY, "--load-seed"])
    assert summary["clientLog"] == [], summary["clientLog"]
    first, same_seed, other_seed = summary["results"]["loadSeed"]
    assert first == same_seed
    assert other_seed != first
    assert first[0] != first[1], "the load seed starts the instance's sampling, not each reply"
    # Official JS client: a prediction's own seed wins over its instance's load seed.
    assert results["js"]["predictionSeedWins"] == results["js"]["seed"][0]


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_can_ask_for_log_probabilities(results: dict[str, Any]) -> None:
    # Its fragments drop the tokens (its schema has no such field); the request still runs
    # and the reply is unchanged. The values themselves: test_interop_logprobs.py.
    plain, with_log_probs = results["js"]["logProbs"]
    assert with_log_probs == plain != ""


@pytest.mark.timeout(TEST_TIMEOUT)
def test_structured_output_json_schema(results: dict[str, Any]) -> None:
    assert results["jsonSchema"] in ({"colour": "red"}, {"colour": "green"}, {"colour": "blue"})


@pytest.mark.timeout(TEST_TIMEOUT)
def test_structured_output_gbnf(results: dict[str, Any]) -> None:
    assert results["gbnf"] in ("yes!", "no!")


@pytest.mark.timeout(TEST_TIMEOUT)
def test_load_context_length_and_accepted_gpu_settings(results: dict[str, Any]) -> None:
    # Loaded with contextLength 256, a seed, flashAttention and a GPU ratio (no-ops on a CPU).
    assert results["load"]["contextLength"] == 256


@pytest.mark.timeout(TEST_TIMEOUT)
def test_context_overflow_stop_at_limit(results: dict[str, Any]) -> None:
    assert "256" in results["load"]["stopAtLimit"], results["load"]["stopAtLimit"]


@pytest.mark.timeout(TEST_TIMEOUT)
@pytest.mark.parametrize("policy", ["rollingWindow", "truncateMiddle"])
def test_context_overflow_truncates(results: dict[str, Any], policy: str) -> None:
    reply = results["load"][policy]
    assert reply["predicted"] == 8
    assert reply["prompt"] < 256
