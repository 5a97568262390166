"""API tokens off the command line: ``--api-token-file`` and ``LMSDK_SERVER_API_TOKENS``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lmstudio_sdk.cli import build_parser
from lmstudio_sdk.cli.serve import build_options
from lmstudio_sdk.server._auth import TOKENS_ENV_VAR, tokens_from_file

TOKEN = "sk-lm-Abcd1234:Efgh5678Ijkl9012Mnop"
OTHER = "sk-lm-Zyxw9876:Vuts5432Rqpo1098Nmlk"


def _options(*argv: str) -> object:
    args = build_parser().parse_args(["serve", "--scripted", *argv])
    return build_options(args)


def test_tokens_from_a_file_require_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(TOKENS_ENV_VAR, raising=False)
    path = tmp_path / "tokens"
    path.write_text(f"# the team's token\n{TOKEN}\n\n{OTHER}  # CI\n")
    options = _options("--api-token-file", str(path))
    assert options.api_tokens == (TOKEN, OTHER)  # type: ignore[attr-defined]
    assert options.requires_token  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "--api-token" in r.getMessage()]


def test_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKENS_ENV_VAR, f"{TOKEN}, {OTHER}")
    options = _options("--allow-guests")
    assert options.api_tokens == (TOKEN, OTHER)  # type: ignore[attr-defined]
    assert not options.requires_token  # type: ignore[attr-defined]


def test_a_token_on_the_command_line_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(TOKENS_ENV_VAR, raising=False)
    caplog.set_level(logging.WARNING)
    options = _options("--api-token", TOKEN)
    assert options.api_tokens == (TOKEN,)  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("other users of this machine can read it" in w for w in warnings)
    assert all(TOKEN not in w and TOKEN[-20:] not in w for w in warnings)


def test_unreadable_or_empty_token_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the API token file"):
        tokens_from_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="holds no token"):
        tokens_from_file(empty)


def test_a_malformed_token_in_a_file_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKENS_ENV_VAR, raising=False)
    path = tmp_path / "tokens"
    path.write_text("sk-lm-secret99:notquitearealtoken\n")
    from lmstudio_sdk.cli.serve import UsageError

    with pytest.raises(UsageError) as error:
        _options("--api-token-file", str(path))
    assert "notquitearealtoken" not in str(error.value)
