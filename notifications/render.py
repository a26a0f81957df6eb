"""渲染 — one Jinja environment; a notice is rendered once, as text and HTML, with a hash.

StrictUndefined makes a missing value fail a test instead of printing an empty notice. The
HTML rendering is made from the text rendering (autoescaped), so the two always say the same.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    html: str
    content_hash: str


@functools.cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("templates", "."),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code; a stat per template per notice
    )


def render_notice(kind: str, context: dict[str, Any]) -> Rendered:
    """Render one notice kind with its context (pure: no I/O beyond reading templates)."""
    env = environment()
    text = env.get_template(f"notices/{kind}.txt.j2").render(context)
    text = "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"
    title = str(context["notice"]["title"])
    html = env.get_template("notices/_layout.html.j2").render(title=title, lines=text.splitlines())
    digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
    return Rendered(title=title, text=text, html=html, content_hash=digest)
