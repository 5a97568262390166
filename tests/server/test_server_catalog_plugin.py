"""The pytest plugin serves a model catalogue (``--lmstudio-catalog`` / ``lmstudio_catalog``).

Run as users get it: pytester starts a fresh pytest in a subprocess, where the ``pytest11``
entry point loads the plugin.
"""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

CATALOG = """
[[model]]
key = "llama-3.2-1b-instruct"
path = "hugging-quants/llama-3.2-1b-instruct"
type = "llm"
source = "scripted"
preload = true
"""

TEST = """
def test_catalogue(lmstudio_server):
    assert lmstudio_server.model_keys == ["llama-3.2-1b-instruct"]
    assert lmstudio_server.loaded_identifiers() == ["llama-3.2-1b-instruct"]
"""


@pytest.mark.parametrize("how", ["option", "ini"])
def test_the_plugin_serves_a_catalogue(pytester: pytest.Pytester, how: str) -> None:
    pytester.makefile(".toml", catalog=CATALOG)
    pytester.makepyfile(TEST)
    if how == "ini":
        pytester.makeini("[pytest]\nlmstudio_catalog = catalog.toml\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    else:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--lmstudio-catalog", "catalog.toml"
        )
    result.assert_outcomes(passed=1)


def test_a_bad_catalogue_fails_the_session_saying_why(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", catalog='[[model]]\nkey = "x"\n')
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--lmstudio-catalog", "catalog.toml"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CatalogError*type is required*"])
