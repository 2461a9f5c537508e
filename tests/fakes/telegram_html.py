"""Telegram's HTML parse mode, as the Bot API applies it: tags, attributes, entities, nesting.

This is the test side's model of Telegram, written independently of the renderer on
purpose: if both shared one parser, a bug in it would pass both. It follows the order of
Telegram's own parser (tdlib `parse_html`): text and character references are read left
to right, a `<` always starts a tag, an unknown tag or an unbalanced end tag is an error
whose message carries the byte offset in the UTF-8 text, as the real server reports.

`strict=True` (the default) also refuses what Telegram lets through but shows wrongly:
a bare `&` or an unknown named entity such as `&nbsp;` (Telegram prints it literally), a
raw `>` in text, nesting Telegram silently drops (a link inside a link, anything inside
`code`, quotes inside quotes), and links that are not http(s)/tg URLs. Those are renderer
bugs for us even where Telegram would not answer 400.

Lengths are UTF-16 code units of the text after parsing, which is how Telegram counts
its 4096 and 1024 limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Tag name -> entity type, from the Bot API "HTML style" section.
TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# Entities that may hold any other entity and sit inside any other (except code/pre).
_STYLE = {"bold", "italic", "underline", "strikethrough", "spoiler"}
_URL_SCHEMES = ("http://", "https://", "tg://")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; `str()` is Telegram's wording."""


@dataclass
class ParsedText:
    """The message as Telegram stores it: plain text plus entities (UTF-16 offsets)."""

    text: str
    entities: list[dict] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Length in UTF-16 code units, the unit of Telegram's limits."""
        return utf16_len(self.text)


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units (astral characters such as emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


_NUMERIC = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+))(;?)")
_NAMED = re.compile(r"&([a-zA-Z]+)(;?)")


def _read_entity(source: str, i: int, strict: bool) -> tuple[str, int] | None:
    """Decode the character reference at source[i] == '&'; None when it is not one."""
    m = _NUMERIC.match(source, i)
    if m:
        value = int(m.group(1), 16) if m.group(1) is not None else int(m.group(2))
        if value == 0 or value >= 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            return None
        if strict and not m.group(3):
            return None
        return chr(value), m.end()
    m = _NAMED.match(source, i)
    if m and m.group(1) in NAMED_ENTITIES:
        if strict and not m.group(2):
            return None
        return NAMED_ENTITIES[m.group(1)], m.end()
    return None


def parse_html(source: str, *, strict: bool = True) -> ParsedText:
    """Parse Telegram HTML into text and entities; raise EntityParseError like the server."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of the text so far
    open_tags: list[tuple[str, str, int, int]] = []  # (tag, argument, utf16 start, byte offset)
    entities: list[dict] = []
    i = 0
    n = len(source)

    def fail(message: str) -> EntityParseError:
        return EntityParseError(f"can't parse entities: {message}")

    while i < n:
        c = source[i]
        if c == "&":
            decoded = _read_entity(source, i, strict)
            if decoded is not None:
                ch, i = decoded
                out.append(ch)
                out_len += utf16_len(ch)
                continue
            if strict:
                m = _NAMED.match(source, i)
                what = f'unknown entity "&{m.group(1)};"' if m and m.group(2) else 'unescaped "&"'
                raise fail(f"{what} at byte offset {_byte_offset(source, i)} (strict fake)")
        if c == ">" and strict:
            raise fail(f'unescaped ">" at byte offset {_byte_offset(source, i)} (strict fake)')
        if c != "<":
            out.append(c)
            out_len += utf16_len(c)
            i += 1
            continue

        begin = i
        begin_byte = _byte_offset(source, begin)
        i += 1
        if i < n and source[i] == "/":
            # End tag: closes the innermost open tag; the name, when given, must match.
            if not open_tags:
                raise fail(f"Unexpected end tag at byte offset {begin_byte}")
            i += 1
            while i < n and not source[i].isspace() and source[i] != ">":
                i += 1
            end_name = source[begin + 2 : i].lower()
            while i < n and source[i].isspace():
                i += 1
            if i >= n or source[i] != ">":
                raise fail(f"Unclosed end tag at byte offset {begin_byte}")
            i += 1
            tag, argument, start, _ = open_tags.pop()
            if end_name and end_name != tag:
                raise fail(
                    f'Unmatched end tag at byte offset {begin_byte}, expected "</{tag}>", '
                    f'found "</{end_name}>"'
                )
            entities.append(_entity(tag, argument, start, out_len))
            continue

        # Start tag with optional attributes.
        while i < n and not source[i].isspace() and source[i] != ">":
            i += 1
        if i >= n:
            raise fail(f"Unclosed start tag at byte offset {begin_byte}")
        tag = source[begin + 1 : i].lower()
        if tag not in TAG_ENTITY:
            raise fail(f'Unsupported start tag "{tag}" at byte offset {begin_byte}')
        attributes: dict[str, str] = {}
        while True:
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise fail(f"Unclosed start tag at byte offset {begin_byte}")
            if source[i] == ">":
                i += 1
                break
            name_start = i
            while i < n and not source[i].isspace() and source[i] not in "=>":
                i += 1
            name = source[name_start:i].lower()
            if not name:
                raise fail(f'Empty attribute name in the tag "{tag}" at byte offset {begin_byte}')
            while i < n and source[i].isspace():
                i += 1
            if i >= n or source[i] != "=":
                if tag == "blockquote" and name == "expandable":
                    attributes[name] = ""
                    continue
                raise fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                    f"at byte offset {begin_byte}"
                )
            i += 1
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise fail(f'Unclosed start tag "{tag}" at byte offset {begin_byte}')
            if source[i] in "\"'":
                quote = source[i]
                i += 1
                value: list[str] = []
                while i < n and source[i] != quote:
                    if source[i] == "&":
                        decoded = _read_entity(source, i, strict)
                        if decoded is not None:
                            ch, i = decoded
                            value.append(ch)
                            continue
                        if strict:
                            raise fail(
                                f'unescaped "&" in an attribute at byte offset '
                                f"{_byte_offset(source, i)} (strict fake)"
                            )
                    if strict and source[i] in "<>":
                        raise fail(
                            f'unescaped "{source[i]}" in an attribute at byte offset '
                            f"{_byte_offset(source, i)} (strict fake)"
                        )
                    value.append(source[i])
                    i += 1
                if i >= n:
                    raise fail(f"Unclosed start tag at byte offset {begin_byte}")
                i += 1
                attributes[name] = "".join(value)
            else:
                token_start = i
                while i < n and (source[i].isalnum() or source[i] in ".-"):
                    i += 1
                if i >= n or not (source[i].isspace() or source[i] == ">"):
                    raise fail(
                        f"Unexpected end of name token at byte offset {_byte_offset(source, token_start)}"
                    )
                attributes[name] = source[token_start:i].lower()

        argument = ""
        if tag == "a":
            argument = attributes.get("href", "")
            if strict and not argument.startswith(_URL_SCHEMES):
                raise fail(f'unsupported URL "{argument}" in tag "a" at byte offset {begin_byte} (strict fake)')
        elif tag == "span":
            if attributes.get("class") != "tg-spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {begin_byte}')
        elif tag == "code":
            cls = attributes.get("class", "")
            argument = cls[len("language-") :] if cls.startswith("language-") else ""
        elif tag == "blockquote":
            argument = "expandable" if "expandable" in attributes else ""
        elif tag == "tg-emoji":
            argument = attributes.get("emoji-id", "")
            if not argument:
                raise fail(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {begin_byte}')
        if strict:
            _check_nesting(tag, [t for t, *_ in open_tags], begin_byte, fail)
        open_tags.append((tag, argument, out_len, begin_byte))

    if open_tags:
        raise fail(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    entities = [e for e in entities if e["length"] > 0]
    # Outer before inner; a <pre> before the <code> it wraps.
    entities.sort(key=lambda e: (e["offset"], -e["length"], e["type"] != "pre"))
    return ParsedText("".join(out), _merge_pre_code(entities))


def _check_nesting(tag: str, outer: list[str], begin_byte: int, fail) -> None:
    """Telegram's nesting rules; it drops violating entities silently, we refuse them."""
    kind = TAG_ENTITY[tag]
    outer_kinds = [TAG_ENTITY[t] for t in outer]
    if outer_kinds and outer_kinds[-1] == "pre" and tag == "code":
        return  # <pre><code class="language-x"> is the one allowed pair
    if "code" in outer_kinds or "pre" in outer_kinds:
        raise fail(f'tag "{tag}" inside code or pre at byte offset {begin_byte} (strict fake)')
    if kind == "text_link" and "text_link" in outer_kinds:
        raise fail(f'nested links at byte offset {begin_byte} (strict fake)')
    if kind == "blockquote" and "blockquote" in outer_kinds:
        raise fail(f'nested blockquote at byte offset {begin_byte} (strict fake)')
    if kind in ("code", "pre") and any(k not in _STYLE and k != "blockquote" for k in outer_kinds):
        raise fail(f'tag "{tag}" inside a link at byte offset {begin_byte} (strict fake)')


def _entity(tag: str, argument: str, start: int, end: int) -> dict:
    kind = TAG_ENTITY[tag]
    entity: dict = {"type": kind, "offset": start, "length": end - start}
    if kind == "text_link":
        entity["url"] = argument
    elif kind == "pre" and argument or kind == "code" and argument:
        entity["language"] = argument
    elif kind == "blockquote" and argument == "expandable":
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = argument
    return entity


def _merge_pre_code(entities: list[dict]) -> list[dict]:
    """<pre><code class="language-x"> becomes one pre entity with a language, as Telegram does."""
    result: list[dict] = []
    for entity in entities:
        if entity["type"] == "code" and result:
            prev = result[-1]
            if prev["type"] == "pre" and (prev["offset"], prev["length"]) == (entity["offset"], entity["length"]):
                if "language" in entity:
                    prev["language"] = entity["language"]
                continue
        entity = dict(entity)
        if entity["type"] == "code":
            entity.pop("language", None)
        result.append(entity)
    return result


def check_html(source: str, *, strict: bool = True) -> list[str]:
    """Problems Telegram (or the strict fake) would report for `source`; [] when valid."""
    try:
        parse_html(source, strict=strict)
    except EntityParseError as exc:
        return [str(exc)]
    return []


def visible_text(source: str, *, strict: bool = True) -> str:
    """The text Telegram shows for `source` (tags removed, references decoded)."""
    return parse_html(source, strict=strict).text
