"""What a type checker tells a user about prediction options (a real ``mypy --strict`` run).

The keyword options of every prediction method are typed, so a misspelt option is an error
in the user's editor and CI, not only at run time. Runs where mypy is installed (the
``typing`` tox env).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

# One call per prediction method, async and blocking: "{option}" is filled in.
USER_CODE = """
from lmstudio_sdk import LLM, AsyncLLM
from lmstudio_sdk.config import load_config_from, prediction_config_from


async def use_async(model: AsyncLLM) -> None:
    await model.respond("hi", {option}=5)
    await model.complete("hi", {option}=5)
    await model.act("hi", [], {option}=5)
    async with model.respond_stream("hi", {option}=5) as stream:
        stream.result()
    async with model.complete_stream("hi", {option}=5) as stream:
        stream.result()


def use_sync(model: LLM) -> None:
    model.respond("hi", {option}=5)
    model.complete("hi", {option}=5)
    model.act("hi", [], {option}=5)
    with model.respond_stream("hi", {option}=5) as stream:
        stream.result()
    with model.complete_stream("hi", {option}=5) as stream:
        stream.result()
    prediction_config_from({option}=5)
"""

LOAD_CODE = """
from lmstudio_sdk.config import load_config_from

load_config_from({option}=4096)
"""


def _mypy(tmp_path: Path, files: dict[str, str]) -> tuple[int, str]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *files,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return run.returncode, run.stdout + run.stderr


def test_misspelt_options_are_type_errors_and_right_ones_pass(tmp_path: Path) -> None:
    code, output = _mypy(
        tmp_path,
        {
            "good.py": USER_CODE.format(option="max_tokens"),
            "bad.py": USER_CODE.format(option="max_token"),
            "good_load.py": LOAD_CODE.format(option="context_length"),
            "bad_load.py": LOAD_CODE.format(option="context_lenght"),
        },
    )
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    # Every error is in a bad file, and every call in a bad file is flagged.
    assert all(line.startswith(("bad.py:", "bad_load.py:")) for line in errors), output
    flagged = {
        int(m.group(1))
        for line in errors
        if (m := re.match(r"bad\.py:(\d+): error: Unexpected keyword argument \"max_token\"", line))
    }
    calls = {
        number for number, line in enumerate(USER_CODE.splitlines(), start=1) if "{option}" in line
    }
    assert flagged == calls, output
    assert any(line.startswith("bad_load.py:") and '"context_lenght"' in line for line in errors), (
        output
    )


def test_a_wrong_value_type_is_a_type_error(tmp_path: Path) -> None:
    code, output = _mypy(
        tmp_path,
        {
            "value.py": """
                from lmstudio_sdk import LLM

                def use(model: LLM) -> None:
                    model.respond("hi", max_tokens="many")
                    model.respond("hi", max_tokens=False, temperature=0.2, seed=3)
            """,
        },
    )
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert len(errors) == 1, output
    assert errors[0].startswith("value.py:5:"), output
    assert '"max_tokens"' in errors[0], output


def test_the_other_keywords_of_a_prediction_are_typed_too(tmp_path: Path) -> None:
    # config, response_format, the callbacks and the timeouts share one declaration with
    # the options (``PredictionKeywords``), for every prediction method.
    code, output = _mypy(
        tmp_path,
        {
            "keywords.py": """
                from lmstudio_sdk import LLM, AsyncLLM, Chat, PredictionConfig

                async def use(model: AsyncLLM, blocking: LLM, chat: Chat) -> None:
                    await model.respond(chat, config=PredictionConfig(max_tokens=5), on_message=chat.append, on_prediction_fragment=print, timeout=None, drain_timeout=1.0)
                    blocking.complete("hi", response_format={"type": "object"}, config={"maxTokens": 5})
                    blocking.respond_stream("hi", on_prompt_processing_progress=lambda: None)
                    await model.complete("hi", raw_text_endpoint=True, timeout="soon")
            """,
        },
    )
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert {line.split(":")[1] for line in errors} == {"7", "8"}, output
    assert any(
        line.startswith("keywords.py:7:") and '"on_prompt_processing_progress"' in line
        for line in errors
    ), output
    assert any(line.startswith("keywords.py:8:") and '"timeout"' in line for line in errors), output


def test_the_keywords_of_a_load_are_typed(tmp_path: Path) -> None:
    code, output = _mypy(
        tmp_path,
        {
            "loads.py": """
                import lmstudio_sdk as lms
                from lmstudio_sdk import AsyncClient, LoadModelConfig

                async def use(client: AsyncClient) -> None:
                    await client.llm.model("k", ttl=60, config=LoadModelConfig(context_length=512), timeout=None)
                    lms.embedding_model("k", config={"context_length": 512}, drain_timeout=1.0)
                    await client.llm.load("k", ttl="an hour")
                    lms.llm("k", tl=60)
            """,
        },
    )
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert {line.split(":")[1] for line in errors} == {"8", "9"}, output
    assert any(line.startswith("loads.py:8:") and '"ttl"' in line for line in errors), output
    assert any(line.startswith("loads.py:9:") and '"tl"' in line for line in errors), output
