"""A small SVG writer: an element tree with correct escaping, serialised as text.

Example
-------
>>> root = svg_document(120, 40)
>>> _ = root.add("text", "a < b & c", x=10, y=20, font_size=12)
>>> print(to_svg_string(root).splitlines()[2].strip())
<text x="10" y="20" font-size="12">a &lt; b &amp; c</text>

Keyword attribute names are translated for convenience: a trailing underscore
is dropped (``class_`` -> ``class``) and other underscores become hyphens
(``stroke_width`` -> ``stroke-width``). Use :meth:`Element.set` for any name
that needs to be given verbatim (e.g. ``"xml:space"``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path

from minidl.atomic import atomic_write_bytes

__all__ = ["Element", "svg_document", "to_svg_string", "write_svg",
           "escape_text", "escape_attr", "format_number"]

SVG_NS = "http://www.w3.org/2000/svg"

_NAME = re.compile(r"[A-Za-z_][\w.\-]*(:[A-Za-z_][\w.\-]*)?\Z")
# Characters that XML 1.0 forbids outright (escaping cannot save them).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_text(text: str) -> str:
    """Escape character data; forbidden control characters become U+FFFD."""
    text = _FORBIDDEN.sub("\ufffd", str(text))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(value: str) -> str:
    """Escape a double-quoted attribute value.

    Newlines and tabs are written as character references, because a parser
    would otherwise normalise them to spaces.
    """
    return (escape_text(value).replace('"', "&quot;")
            .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;"))


def format_number(value: float) -> str:
    """Format a coordinate compactly: at most two decimals, no trailing zeros, no ``-0``."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number for an SVG attribute, received {value}")
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _attr_name(keyword: str) -> str:
    return keyword.rstrip("_").replace("_", "-")


class Element:
    """One SVG/XML element with attributes, optional text and child elements.

    Parameters
    ----------
    tag : str
        Element name, e.g. ``"rect"``.
    text : str, optional
        Character data written before any children (escaped on output).
    **attrs
        Attributes; ``None`` values are skipped, numbers are formatted with
        :func:`format_number`, anything else with ``str``.
    """

    def __init__(self, tag: str, text: str | None = None, **attrs: object) -> None:
        if not isinstance(tag, str) or not _NAME.match(tag):
            raise ValueError(f"expected an XML element name, received {tag!r}")
        self.tag = tag
        self.text = None if text is None else str(text)
        self.attrs: dict[str, str] = {}
        self.children: list[Element] = []
        for key, value in attrs.items():
            self.set(_attr_name(key), value)

    def set(self, name: str, value: object) -> Element:
        """Set attribute ``name`` verbatim (``None`` removes it); returns ``self``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"expected an XML attribute name, received {name!r}")
        if value is None:
            self.attrs.pop(name, None)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            self.attrs[name] = format_number(value)
        else:
            self.attrs[name] = str(value)
        return self

    def add(self, tag: str, text: str | None = None, **attrs: object) -> Element:
        """Create a child element, append it and return the child."""
        return self.append(Element(tag, text, **attrs))

    def append(self, child: Element) -> Element:
        """Append an existing element as the last child and return it."""
        if not isinstance(child, Element):
            raise ValueError(f"expected an Element, received {type(child).__name__}")
        self.children.append(child)
        return child

    def iter(self, tag: str | None = None):
        """Yield this element and all descendants (depth first), optionally by tag."""
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            yield from child.iter(tag)

    def to_string(self, indent: int = 0) -> str:
        """Serialise this element and its children, two spaces per nesting level."""
        lines: list[str] = []
        self._write(lines, indent)
        return "\n".join(lines)

    def _write(self, lines: list[str], depth: int) -> None:
        pad = "  " * depth
        attrs = "".join(f' {k}="{escape_attr(v)}"' for k, v in self.attrs.items())
        head = f"{pad}<{self.tag}{attrs}"
        text = "" if self.text is None else escape_text(self.text)
        if not self.children:
            lines.append(f"{head}>{text}</{self.tag}>" if text else f"{head}/>")
            return
        lines.append(f"{head}>{text}")
        for child in self.children:
            child._write(lines, depth + 1)
        lines.append(f"{pad}</{self.tag}>")

    def __repr__(self) -> str:
        return f"Element({self.tag!r}, {len(self.attrs)} attributes, {len(self.children)} children)"


def svg_document(width: float, height: float, **attrs: object) -> Element:
    """An ``<svg>`` root of the given pixel size with a matching ``viewBox``."""
    if not (width > 0 and height > 0):
        raise ValueError(f"expected a positive width and height, received {width} x {height}")
    root = Element("svg", xmlns=SVG_NS, width=width, height=height,
                   viewBox=f"0 0 {format_number(width)} {format_number(height)}")
    for key, value in attrs.items():
        root.set(_attr_name(key), value)
    return root


def to_svg_string(root: Element) -> str:
    """The complete document text: XML declaration, the tree, a final newline."""
    if not isinstance(root, Element) or root.tag != "svg":
        got = f"<{root.tag}>" if isinstance(root, Element) else type(root).__name__
        raise ValueError(f"expected an <svg> root Element, received {got}")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + root.to_string() + "\n"


def write_svg(path: str | os.PathLike, root: Element) -> Path:
    """Write the document rooted at ``root`` to ``path`` (UTF-8, atomically).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    return atomic_write_bytes(path, to_svg_string(root).encode("utf-8"))
