"""Help texts shared by the commands, in plain words (``--help`` shows them as they are)."""
from __future__ import annotations

import re

OPTIC_NERVE_RULES = ("bilateral", "unilateral", "unilateral-L", "unilateral-R")
OPTIC_NERVE_RULE_HELP = ("which optic nerves keep their priority-1 limit: bilateral (both, the protocol's default), "
                         "unilateral (both relaxed to priority 2 with no acceptable limit: the patient accepts the "
                         "risk of unilateral blindness), unilateral-L / unilateral-R (only that side's nerve relaxed)")


def plain_description(doc: str | None) -> str:
    """A module docstring as ``--help`` shows it: reStructuredText quotes and ``::`` removed."""
    text = doc or ""
    text = text.replace("``", "")
    text = re.sub(r":(?:func|class|mod|meth|data):`~?([^`]+)`", r"\1", text)
    return re.sub(r"::(\s*\n)", r":\1", text)
