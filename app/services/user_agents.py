"""A readable summary of a User-Agent header ("Firefox 133 on Windows"), for session lists.

The parsing is ua-parser's (the uap-core rules that most analytics tools share); the summary
is for people recognising their own devices, never for a security decision.
"""

from __future__ import annotations

import functools

from ua_parser import parse

UNKNOWN = "Unknown device"


@functools.lru_cache(maxsize=1024)
def describe_user_agent(user_agent: str | None) -> str:
    """``"<browser> <major> on <OS> [(<device>)]"``, or as much of it as can be told."""
    if not user_agent:
        return UNKNOWN
    result = parse(user_agent[:512])
    browser = result.user_agent
    system = result.os
    device = result.device
    parts: list[str] = []
    if browser is not None and browser.family != "Other":
        parts.append(" ".join(filter(None, [browser.family, browser.major])))
    if system is not None and system.family != "Other":
        parts.append(("on " if parts else "") + system.family)
    if device is not None and device.family not in ("Other", "Mac", "Spider") and parts:
        parts.append(f"({device.family})")
    return " ".join(parts) if parts else UNKNOWN
