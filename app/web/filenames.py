"""File names from uploads: cleaned on the way in, safely encoded on the way out."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_NAME_BYTES = 255
MAX_EXTENSION_CHARS = 16
FALLBACK_NAME = "download"
_UNSAFE_IN_QUOTED = re.compile(r'[^\x20-\x7e]|["\\%;]')
# type/subtype, as RFC 6838 restricts their names; parameters are dropped.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}"
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def clean_filename(raw: str) -> str:
    """The name a recipient will see and save under.

    Drops any directory part (both separators), control and format characters
    (which include the bidi overrides used to disguise ``exe.txt``), and caps
    the length at 255 UTF-8 bytes while keeping the extension.
    """
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(char for char in name if unicodedata.category(char) not in {"Cc", "Cf"})
    # Normalise after filtering: a removed format character can sit between a
    # letter and its combining accent.
    name = unicodedata.normalize("NFC", name).strip()
    if not name.replace(" ", "").strip("."):
        return FALLBACK_NAME
    return _truncate(name)


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    shortened = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return shortened + suffix


def clean_content_type(raw: str | None) -> str:
    """The type a browser declared for an uploaded file, if it is a plain media type.

    It is stored sealed with the name and never trusted when serving (downloads are
    always application/octet-stream); anything else, or anything long, is replaced.
    """
    media_type = (raw or "").split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else DEFAULT_CONTENT_TYPE


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name per RFC 6266 / RFC 8187."""
    fallback = _UNSAFE_IN_QUOTED.sub("_", name) or FALLBACK_NAME
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
