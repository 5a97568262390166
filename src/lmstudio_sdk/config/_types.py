"""The literal types config options take."""

from __future__ import annotations

from typing import Literal

ContextOverflowPolicy = Literal["stopAtLimit", "truncateMiddle", "rollingWindow"]
ToolNaming = Literal["passThrough", "removeSpecial", "snakeCase", "camelCase"]
KVCacheQuantizationType = Literal["f32", "f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
Domain = Literal["llm", "embedding"]
