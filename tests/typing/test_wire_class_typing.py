"""What a type checker sees of a tagged-union variant declared with ``@variant(...)``.

The decorator adds the tag field at run time; ``dataclass_transform`` lets mypy check the
constructor (a wrong keyword, the tag passed in, a positional argument to a keyword-only
class) and the frozenness as it would for ``@attrs.frozen``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_user_typing import _mypy

pytest.importorskip("mypy")

CODE = """
from lmstudio_sdk.protocol.endpoints._plans import ArtifactDownloadPlanModelNode
from lmstudio_sdk.protocol.endpoints.files import RetrieveOnFileProcessingEnd
from lmstudio_sdk.protocol.wire import ChannelClose

end = RetrieveOnFileProcessingEnd(index=2)
index: int = end.index
ChannelClose(channel_id=1)
ArtifactDownloadPlanModelNode(state="pending", dependency_label="x")
ChannelClose(channel=1)
ChannelClose(type="channelClose", channel_id=1)
ArtifactDownloadPlanModelNode("pending", "x")
end.index = 3
"""


def test_variant_constructors_are_checked(tmp_path: Path) -> None:
    code, output = _mypy(tmp_path, {"wire_user.py": CODE})
    assert code == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    # Lines 2-9 are right; each of lines 10-13 is wrong in its own way.
    assert {int(line.split(":")[1]) for line in errors} == {10, 11, 12, 13}, output
    assert any('"channel"' in line for line in errors), output
    assert any('"type"' in line for line in errors), output
