"""The project's own docs (docs/*.md) as pages, so the app can link to them instead of naming
a file. Rendered with markdown-it-py with raw HTML off: the text is escaped."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from markdown_it import MarkdownIt

DOCS = {"gate": "gate.md", "runbook": "runbook.md", "architecture": "architecture.md", "decisions": "spec-decisions.md"}
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@login_required
@require_GET
def doc_page(request: HttpRequest, name: str) -> HttpResponse:
    if name not in DOCS:
        raise Http404("no such document")
    path = Path(settings.BASE_DIR) / "docs" / DOCS[name]
    if not path.is_file():  # an installation without the docs directory
        raise Http404("this installation has no copy of the docs")
    text = path.read_text(encoding="utf-8")
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), name)
    body = mark_safe(_markdown.render(text))  # noqa: S308 -- markdown-it with html off escapes the text
    return render(request, "docs/page.html", {"title": title, "body": body})
