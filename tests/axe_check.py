"""axe-core, from its npm package (`tests/axe/`, installed by `make install-dev`), run inside a
Playwright page: the automated half of the accessibility checks every page must pass.

The script is evaluated through the DevTools protocol rather than added as a `<script>`, so the
page's Content-Security-Policy (no inline scripts) stays in force for everything else the test
sees."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")
# WCAG 2.1 A and AA plus axe's best practices (landmarks, one h1, headings in order).
RULESETS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@cache
def _axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `make install-dev` (npm ci in tests/axe)")
    return AXE.read_text(encoding="utf-8")


def violations(page: Any, impacts: tuple[str, ...] = SERIOUS) -> list[str]:
    """One line per violation at `impacts` on the page as it is now: rule, impact, help and the
    first offending elements, so a failing assertion says what to fix."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result: dict[str, Any] = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        RULESETS,
    )
    found = []
    for item in result["violations"]:
        if item["impact"] in impacts:
            targets = ", ".join(str(node["target"]) for node in item["nodes"][:3])
            found.append(f"{item['id']} ({item['impact']}): {item['help']} at {targets}")
    return found
