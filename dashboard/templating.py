"""Rendering pages: the templates, the context every page shares, and a generic page of tables.

Add-on views (``dashboard/jobs_views.py``) render with :func:`render_tables`, so they get the
site's header, navigation and styles without templates of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import escape

from dashboard.state import get_state

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class Link:
    text: str
    href: str


@dataclass(frozen=True)
class Moment:
    """A point in time in a page: sent as epoch ms and ISO UTC, shown by the browser in the viewer's time zone in
    the pages' one format (``static/js/common.js``); the UTC text stands in until the script runs."""

    ms: int

    def __html__(self) -> str:
        at = datetime.fromtimestamp(self.ms / 1000, tz=UTC)
        iso = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f'<time data-ms="{self.ms}" datetime="{iso}">{at:%Y-%m-%d %H:%M:%S} UTC</time>'


@dataclass(frozen=True)
class State:
    """A state word shown as a coloured chip (``running``, ``failing``, ``firing``, ``ok``...)."""

    word: str

    def __html__(self) -> str:
        word = escape(self.word)
        return f'<span class="status" data-state="{word}">{word}</span>'


Cell = str | int | float | Link | Moment | State | None
TEMPLATES.env.tests["link"] = lambda value: isinstance(value, Link)


def shown(value: object) -> str:
    """A setting as a person reads it: yes/no, a dash for none, a list without brackets."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


TEMPLATES.env.filters["shown"] = shown


@dataclass(frozen=True)
class Table:
    """One table of :func:`render_tables`; ``empty`` is shown instead when there are no rows."""

    heading: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    empty: str = "nothing yet"


def render(request: Request, template: str, title: str, active: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """A page with the shared context: navigation, the active entry, the colour thresholds."""
    settings = get_state(request).settings
    shared = {"title": title, "nav": request.app.state.nav, "active": active,
              "thresholds": {"good": settings.compliance_good, "warn": settings.compliance_warn}}
    return TEMPLATES.TemplateResponse(request, template, {**shared, **context}, status_code=status_code)


def render_tables(request: Request, title: str, tables: Sequence[Table], active: str = "Jobs",
                  intro: str | None = None) -> HTMLResponse:
    """A page of headed tables; cells are text, numbers, None (shown as a dash) or :class:`Link`."""
    return render(request, "tables.html", title, active, tables=tables, intro=intro)
