"""Helpers for `tests/test_pages_quality.py`: walk every page a signed-in person can reach by
following links, and hold each page to the bar every page must meet (accessibility, CSP,
CSRF on forms, no PHI in the address, security headers, keyboard use).

Checks return lists of problems instead of asserting, so one run shows everything wrong on
every page of every role."""

from __future__ import annotations

import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urljoin, urlsplit

from tests.axe_check import violations

# Query parameters pages may carry: filters and paging, never free text typed by a person.
KNOWN_QUERY_KEYS = {
    "state",
    "stage",
    "status",
    "released",
    "date_from",
    "date_to",
    "page",
    "cursor",
    "fresh",
    "version",
    "start",
    "end",
    "format",
    "kind",
    "outcome",
    "action",
    "role",
    "lang",
    "locale",
    "before",
    "after",
    "since",
    "until",
    "patient",
    "actor",
    "filtered",  # the audit filter form's flags
    "hide_views",
    "patient_id",
    "session_id",
    "user_id",
    "object_type",
    "object_id",
    "actor_id",
    "purpose",
    "show",
    "sort",
    "order",
    "limit",
    "offset",
    "next",
    "tab",
    "view",
    "saved",
    "done",
    "day",
    "month",
    "year",
    "date",
    "from",
    "to",
}
# Not pages: media, evidence and transcript downloads, the API, static files, sign-out.
SKIPPED_PATH_PARTS = ("/static/", "/listen/", "/evidence/", "/download", "/export", "/audio")
SKIPPED_PREFIXES = ("/api/", "/static", "/health", "/metrics", "/schema")
SIGN_OUT = ("/console/logout", "/portal/logout")
REQUIRED_HEADERS = {
    "content-security-policy": "script-src 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "",  # present (any policy)
    "cache-control": "no-store",
}

TABBABLE_JS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, '
    + '[tabindex]:not([tabindex="-1"])';
  return Array.from(document.querySelectorAll(selector))
    .filter(el => !el.disabled && !el.closest('[hidden], [inert]')
      && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')
    .filter(el => !(el.tagName === 'SUMMARY' && el.parentElement.tagName !== 'DETAILS'))
    .map(el => el.outerHTML.slice(0, 90));
}"""
FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const shadow = style.boxShadow && style.boxShadow !== 'none';
  return {html: el.outerHTML.slice(0, 90), visible: outline || shadow};
}"""


@dataclass
class Visit:
    """What the browser saw while a page loaded: console errors, uncaught errors, failures."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.text.startswith("Failed to load resource"):
            return  # said better by `_response` (which names the address)
        if message.type == "error" or "Refused to" in message.text:
            self.problems.append(f"console {message.type}: {message.text[:200]}")

    def _response(self, response: Any) -> None:
        """A page's own status is checked by the crawl; this catches its style sheets,
        scripts and images (and what scripts fetch)."""
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.append(f"{response.status} for {response.url}")

    def _failed(self, request: Any) -> None:
        if request.failure != "net::ERR_ABORTED":  # a poll or audio cut short by navigation
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def take(self) -> list[str]:
        found, self.problems = self.problems, []
        return found


def header_problems(response: Any) -> list[str]:
    headers = response.all_headers()
    found = [
        f"header {name} missing or without {needle!r}"
        for name, needle in REQUIRED_HEADERS.items()
        if name not in headers or needle not in headers[name]
    ]
    framing = headers.get("content-security-policy", "")
    if "frame-ancestors" not in framing and "x-frame-options" not in headers:
        found.append("neither frame-ancestors nor X-Frame-Options")
    return found


def url_problems(url: str, phi: Iterable[str]) -> list[str]:
    """Names, e-mail addresses and free-text query values never travel in an address
    (addresses end up in logs, history and Referer headers)."""
    parts = urlsplit(url)
    found = [
        f"query parameter {key!r} is not a known filter"
        for key, _ in parse_qsl(parts.query, keep_blank_values=True)
        if key not in KNOWN_QUERY_KEYS
    ]
    lowered = unquote_plus(url).lower()
    found += [f"PHI {term!r} in the address" for term in phi if term.lower() in lowered]
    return found


def page_problems(page: Any) -> list[str]:
    """Axe (serious and critical, color-contrast included), one h1, a language, and the CSRF
    token in every POST form."""
    found = [f"axe: {line}" for line in violations(page)]
    facts = page.evaluate(
        """() => {
          const PRE_SIGN_IN = ['/console/login', '/portal/login', '/portal/join', '/lang'];
          return {
          h1: document.querySelectorAll('h1').length,
          lang: document.documentElement.getAttribute('lang') || '',
          forms: Array.from(document.querySelectorAll('form'))
            .filter(f => (f.getAttribute('method') || '').toLowerCase() === 'post')
            .filter(f => !PRE_SIGN_IN.includes(new URL(f.action, location.href).pathname)
              || document.querySelector('form[action$="/logout"]'))
            .filter(f => !(f.querySelector('input[name=csrf_token]') || {}).value)
            .map(f => f.getAttribute('action')),
        }; }"""
    )
    if facts["h1"] != 1:
        found.append(f"{facts['h1']} <h1> elements (exactly one expected)")
    if not facts["lang"].strip():
        found.append("<html lang> is empty")
    found += [f"POST form {action!r} without a csrf_token value" for action in facts["forms"]]
    return found


def keyboard_problems(page: Any, presses: int = 30) -> list[str]:
    """Tab walks the interactive elements in DOM order, starting with the skip link, and
    whatever has focus shows it (an outline or a box shadow)."""
    expected = page.evaluate(TABBABLE_JS)[:presses]
    # Called right after the page loaded: nothing has focus, so Tab starts at the top.
    found, seen = [], []
    for _ in expected:
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_JS)
        if focused is None:
            break
        seen.append(focused["html"])
        if not focused["visible"]:
            found.append(f"no visible focus indicator on {focused['html']}")
    if not seen or 'class="skip"' not in seen[0]:
        found.append(f"first Tab stop is not the skip link: {seen[:1]}")
    if seen != expected[: len(seen)] or len(seen) < len(expected):
        found.append(f"Tab order differs from DOM order: expected {expected}, got {seen}")
    return found


def same_origin_links(page: Any, base: str) -> list[str]:
    """The page's `<a href>` targets worth visiting as pages, without fragments."""
    hrefs: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll('a[href]'))
          .filter(a => !a.hasAttribute('download'))
          .map(a => a.href.split('#')[0])"""
    )
    origin = urlsplit(base)
    kept = []
    for href in hrefs:
        parts = urlsplit(href)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            continue
        if parts.path.startswith(SKIPPED_PREFIXES) or parts.path in SIGN_OUT:
            continue
        if any(part in parts.path for part in SKIPPED_PATH_PARTS):
            continue
        kept.append(href)
    return kept


ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|/\d+(?=/|$)")


def page_kind(url: str) -> str:
    """A page's template, roughly: its path with ids blanked, and whether a query narrows it
    (one filtered or paged view of a list is checked, not every combination of filters)."""
    parts = urlsplit(url)
    return ID.sub("/{id}", parts.path) + ("?…" if parts.query else "")


@dataclass
class Crawl:
    """Breadth-first over a signed-in person's links, each page checked once."""

    page: Any
    base: str
    phi: list[str]
    limit: int = 60
    per_kind: int = 1
    # Kinds of page checked so far; share one between crawls to check each kind once in all.
    kinds: Counter[str] = field(default_factory=Counter)
    more_checks: Callable[[Any, str], list[str]] | None = None  # more checks for some pages
    visited: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per page: where the time goes
    problems: list[str] = field(default_factory=list)

    def run(self, start: str, *more: str) -> None:
        """From `start`, and `more` pages no link leads to (a GET form's answer)."""
        visit = Visit()
        visit.attach(self.page)
        more = tuple(urljoin(self.base, path) for path in more)
        queue: deque[str] = deque([start, *more])
        seen = {start, *more}
        while queue and len(self.visited) < self.limit:
            url = queue.popleft()
            if url != start and self.kinds[page_kind(url)] >= self.per_kind:
                continue  # the same page for another id or filter value: checked already
            began = time.monotonic()
            response = self.page.goto(url)
            if self.page.url in self.visited:
                continue  # a redirect to a page checked already (e.g. /console)
            self.visited.append(self.page.url)
            kind = page_kind(self.page.url)
            if self.kinds[kind] < self.per_kind:  # the landing page may be known already
                self.kinds[kind] += 1
                found = self.check(response, visit)
                self.problems += [f"{urlsplit(self.page.url).path}: {line}" for line in found]
                self.seconds[urlsplit(self.page.url).path] = round(time.monotonic() - began, 1)
            for link in same_origin_links(self.page, self.base):
                if link not in seen:
                    seen.add(link)
                    queue.append(link)
        if queue:
            self.problems.append(f"stopped after {self.limit} pages; {len(queue)} not visited")

    def check(self, response: Any, visit: Visit) -> list[str]:
        found = []
        if response is None or response.status >= 400:
            found.append(f"status {response.status if response else 'none'}")
        if response is not None:
            found += header_problems(response)
        found += url_problems(self.page.url, self.phi)
        found += page_problems(self.page)
        if self.more_checks is not None:
            found += self.more_checks(self.page, self.page.url)
        return found + visit.take()
