"""The templates, read as text (no browser, well under a second): what the pages' Content
Security Policy would block, forms without their CSRF field, scripts nothing loads, and
user-visible English that translators would never see.

Why each rule:
- CSP is `script-src 'self'; style-src 'self'` (appliance/web/security.py): inline `<script>`
  code, `on*=` handlers, `style=` attributes, `<style>` elements and `javascript:` URLs are
  blocked by the browser, so a page that relies on them is silently broken. External asset
  URLs would both be blocked and leak the clinic's traffic off the LAN.
- Every POST form carries `csrf_token` (checked by `provide_page_principal`). The sign-in
  forms (console, portal, and the portal's join-by-invitation form) are the exception: there
  is no session (so no token) yet. They are defended against login CSRF by
  `refuse_cross_site` (appliance/auth/controllers.py), which refuses a post whose
  Sec-Fetch-Site is not same-origin/none, or whose Origin is another host (tested in
  tests/test_pages_quality.py, with the language switcher `/lang`, defended the same way).
- GET forms put their fields in the address (logs, history): no typed text there except the
  listed id filters. Every static script is loaded by some template (no dead code shipped).
- Text is wrapped for translation (`_()` / `{% trans %}`): the check is a heuristic on text
  nodes, a few attributes people read (title, alt, placeholder, aria-label, button values)
  and quoted words inside `{{ }}` outside `_()`. It says file, line and the text, so a
  failure is a to-do list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from appliance.web.pages import STATIC, TEMPLATES

TEMPLATE_FILES = sorted(TEMPLATES.rglob("*.html"))
# (template, form action): sign-in forms, posted before a session (and its token) exists.
PRE_SIGN_IN_FORMS = {
    ("login.html", "/console/login"),
    ("portal_login.html", "/portal/login"),
    ("portal_join.html", "/portal/join"),  # before the account exists; refuse_cross_site too
}
# Static scripts loaded some other way than a template's <script src> (none today).
UNREFERENCED_SCRIPTS_ALLOWED: set[str] = set()

# Names of formats and standards, the same in every language (the whole text node).
NAMES_NOT_WORDS = {"WebVTT", "SRT", "TXT", "JSON", "CSV", "PDF", "TOTP"}

JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", re.S)
JINJA_EXPR = re.compile(r"\{\{.*?\}\}", re.S)
JINJA_STMT = re.compile(r"\{%.*?%\}", re.S)
GETTEXT_CALL = re.compile(r"\b(?:_|gettext|ngettext|pgettext|npgettext)\s*\(")
STRING_LITERAL = re.compile(r"\"([^\"]*)\"|'([^']*)'")
# A quoted literal a person reads: a capitalised word, or two words.
READABLE = re.compile(r"[A-Z][a-z]|[A-Za-z]{2,}\s+[A-Za-z]{2,}")
LETTER = re.compile(r"[^\W\d_]")
READ_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "aria-description", "label"}
ASSET_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset"}


def _blank_like(match: re.Match[str]) -> str:
    """Keeps line numbers: a removed construct leaves its newlines behind."""
    return "\n" * match.group(0).count("\n") + " "


def _without_jinja(text: str) -> str:
    return JINJA_STMT.sub(" ", JINJA_EXPR.sub(" ", text))


@dataclass
class Scan(HTMLParser):
    """One template's start tags, forms and text, with line numbers."""

    name: str
    problems: dict[str, list[str]] = field(default_factory=dict)
    _script: dict[str, str | None] | None = None
    _script_text: str = ""
    _style: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def add(self, kind: str, message: str) -> None:
        self.problems.setdefault(kind, []).append(f"{self.name}:{self.getpos()[0]}: {message}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.add("csp", f"<{tag} {name}=...> event-handler attribute")
            if name == "style":
                self.add("csp", f"<{tag} style=...> attribute")
            if value.strip().lower().startswith("javascript:"):
                self.add("csp", f"<{tag} {name}={value!r}> javascript: URL")
            if (
                tag != "a"
                and name in ASSET_ATTRIBUTES
                and re.match(r"\s*(https?:)?//", value, re.I)
            ):
                self.add("csp", f"<{tag} {name}={value!r}> external asset")
            if name in READ_ATTRIBUTES and LETTER.search(_without_jinja(value)):
                self.add("i18n", f"<{tag} {name}={value!r}> not wrapped for translation")
        kinds = dict(attrs)
        button = tag == "input" and (kinds.get("type") or "") in ("submit", "button", "reset")
        if button and LETTER.search(_without_jinja(kinds.get("value") or "")):
            self.add("i18n", f"<input value={kinds.get('value')!r}> not wrapped")
        if tag == "script":
            self._script, self._script_text = kinds, ""
        if tag == "style":
            self._style = True
            self.add("csp", "<style> element (style-src 'self' blocks it)")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            is_json = (self._script.get("type") or "") == "application/json"
            if not is_json and (self._script_text.strip() or not self._script.get("src")):
                self.add("csp", "inline <script> code (only src= or application/json)")
            self._script = None
        if tag == "style":
            self._style = False

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text += data
            return
        if self._style:
            return
        text = _without_jinja(data).strip()
        if LETTER.search(text) and text not in NAMES_NOT_WORDS:
            self.add("i18n", f"text {' '.join(text.split())[:70]!r} not wrapped")


def scan(path: Path) -> dict[str, list[str]]:
    source = JINJA_COMMENT.sub(_blank_like, path.read_text(encoding="utf-8"))
    source = TRANS_BLOCK.sub(_blank_like, source)
    found = Scan(str(path.relative_to(TEMPLATES)))
    for match in JINJA_EXPR.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        for literal in _literals_outside_gettext(match.group(0)[2:-2]):
            found.problems.setdefault("i18n", []).append(
                f"{found.name}:{line}: quoted {literal!r} in {{{{ }}}} not wrapped"
            )
    found.feed(source)
    found.close()
    return found.problems


def _literals_outside_gettext(expression: str) -> list[str]:
    """Quoted, readable words in an expression, after removing every `_(...)` call."""
    kept, index = [], 0
    for call in GETTEXT_CALL.finditer(expression):
        if call.start() < index:
            continue
        kept.append(expression[index : call.start()])
        depth, index = 1, call.end()
        while index < len(expression) and depth:
            depth += {"(": 1, ")": -1}.get(expression[index], 0)
            index += 1
    kept.append(expression[index:])
    rest = "".join(kept)
    return [a or b for a, b in STRING_LITERAL.findall(rest) if READABLE.search(a or b)]


def all_problems(kind: str) -> list[str]:
    return [line for path in TEMPLATE_FILES for line in scan(path).get(kind, [])]


def test_there_are_templates_to_check() -> None:
    assert len(TEMPLATE_FILES) > 10


def test_no_template_uses_what_the_content_security_policy_blocks() -> None:
    problems = all_problems("csp")
    assert not problems, "\n".join(problems)


POST_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
CSRF_INPUT = re.compile(
    r'<input\s+type="hidden"\s+name="csrf_token"\s+value="\{\{\s*csrf_token\s*\}\}"\s*/?>'
)


def test_every_post_form_carries_the_csrf_token_except_the_sign_in_forms() -> None:
    missing, exempt_seen = [], set()
    for path in TEMPLATE_FILES:
        source = JINJA_COMMENT.sub(_blank_like, path.read_text(encoding="utf-8"))
        for form in POST_FORM.finditer(source):
            attributes, body = form.group(1), form.group(2)
            if not re.search(r'method="post"', attributes, re.I):
                continue
            action = re.search(r'action="([^"]*)"', attributes)
            key = (path.name, action.group(1) if action else "")
            if key in PRE_SIGN_IN_FORMS:
                exempt_seen.add(key)
                assert not CSRF_INPUT.search(body), key  # nothing to send before a session
                continue
            if not CSRF_INPUT.search(body):
                line = source.count("\n", 0, form.start()) + 1
                missing.append(f"{path.name}:{line}: <form{attributes}> has no csrf_token")
    assert not missing, "\n".join(missing)
    assert exempt_seen == PRE_SIGN_IN_FORMS, "an exempt sign-in form moved: update the list"


GET_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
TYPED_FIELD = re.compile(r"<(input|textarea)\b([^>]*)>", re.I)
NOT_TYPED = {"hidden", "date", "month", "number", "checkbox", "radio", "submit", "button"}
# (template, field) of GET forms that take typed text: ids and action names only, never names
# (a GET form's fields end up in the address, the server's access log and the history).
TYPED_GET_FIELDS_ALLOWED = {
    ("audit.html", "action"),  # an audit action name, e.g. consent.change
    ("audit.html", "actor"),  # a user id or role
    ("audit.html", "patient"),  # a patient id
}


def test_no_get_form_puts_typed_text_in_the_address_except_listed_id_filters() -> None:
    found = []
    for path in TEMPLATE_FILES:
        source = JINJA_COMMENT.sub(_blank_like, path.read_text(encoding="utf-8"))
        for form in GET_FORM.finditer(source):
            if re.search(r'method="post"', form.group(1), re.I):
                continue
            for field_tag in TYPED_FIELD.finditer(form.group(2)):
                attributes = field_tag.group(2)
                kind = re.search(r'type="([^"]*)"', attributes)
                if field_tag.group(1).lower() == "input" and kind and kind.group(1) in NOT_TYPED:
                    continue
                name = re.search(r'name="([^"]*)"', attributes)
                key = (path.name, name.group(1) if name else "")
                if key not in TYPED_GET_FIELDS_ALLOWED:
                    found.append(f"{path.name}: GET form field {key[1]!r} takes typed text")
    assert not found, "\n".join(found)


def test_the_sign_in_exception_is_defended_against_login_csrf() -> None:
    """The exempt forms post to handlers that call `sign_in_request`, which refuses
    cross-site posts; if that ever goes, the exemption above must go too."""
    import inspect

    from appliance.auth import controllers, pages
    from appliance.portal import join

    assert "refuse_cross_site(request)" in inspect.getsource(controllers.sign_in_request)
    assert "sign_in_request(" in inspect.getsource(pages.sign_in_from_form)
    assert "refuse_cross_site(request)" in inspect.getsource(join.JoinPages.join.fn)


def test_every_static_script_is_loaded_by_some_template() -> None:
    sources = "\n".join(path.read_text(encoding="utf-8") for path in TEMPLATE_FILES)
    unused = [
        script.name
        for script in sorted(STATIC.rglob("*.js"))
        if f"/static/{script.relative_to(STATIC).as_posix()}" not in sources
        and script.name not in UNREFERENCED_SCRIPTS_ALLOWED
    ]
    assert unused == []


def test_every_user_visible_text_in_the_templates_is_wrapped_for_translation() -> None:
    problems = all_problems("i18n")
    assert not problems, f"{len(problems)} unwrapped:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("snippet", "kinds"),
    [
        ('<p onclick="go()">{{ _("Hi") }}</p>', {"csp"}),
        ('<p style="color: red">{{ _("Hi") }}</p>', {"csp"}),
        ("<script>alert(1)</script>", {"csp"}),
        ('<script type="application/json" id="d">{"a": 1}</script>', set()),
        ('<script src="/static/x.js" defer></script>', set()),
        ('<a href="javascript:go()">{{ _("Go") }}</a>', {"csp"}),
        ('<img src="https://cdn.example/x.png" alt="{{ _("X") }}">', {"csp"}),
        ("<p>Sessions</p>", {"i18n"}),
        ('<p>{{ _("Sessions of %(name)s", name=p.name) }}</p>', set()),
        ("<p>{% trans %}Sessions{% endtrans %}</p>", set()),
        ('<p>{{ title or "Console" }}</p>', {"i18n"}),
        ('<li class="{{ "wide" if x }}">{{ n }} · {{ m }}</li>', set()),
        ('<input placeholder="Your question">', {"i18n"}),
    ],
)
def test_the_checks_catch_what_they_are_meant_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snippet: str, kinds: set[str]
) -> None:
    monkeypatch.setattr(
        "tests.test_templates_lint.TEMPLATES", tmp_path
    )  # scan() names files relative to TEMPLATES
    path = tmp_path / "x.html"
    path.write_text(snippet, encoding="utf-8")
    assert set(scan(path)) == kinds
