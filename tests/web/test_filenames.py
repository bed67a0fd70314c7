"""Unit tests for app/web/filenames.py: cleaning upload names and Content-Disposition."""

from __future__ import annotations

import random
import re
import unicodedata
from urllib.parse import unquote

import pytest

from onetimeshare.web.filenames import (
    FALLBACK_NAME,
    MAX_EXTENSION_CHARS,
    MAX_NAME_BYTES,
    clean_filename,
    content_disposition,
)

# --- clean_filename ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("dir/report.pdf", "report.pdf"),
        ("a/b/c/report.pdf", "report.pdf"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("C:\\x\\y.txt", "y.txt"),
        ("C:\\Users\\me/Desktop\\mixed/sep.txt", "sep.txt"),
        ("\\\\server\\share\\file.doc", "file.doc"),
    ],
)
def test_directory_parts_dropped(raw: str, expected: str) -> None:
    assert clean_filename(raw) == expected


@pytest.mark.parametrize("raw", ["dir/", "a\\", "../", "..\\..\\", "/", "\\", "x/.."])
def test_nothing_after_the_last_separator_falls_back(raw: str) -> None:
    assert clean_filename(raw) == FALLBACK_NAME


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\x00b.txt", "ab.txt"),
        ("line\r\nbreak.txt", "linebreak.txt"),
        ("tab\there.txt", "tabhere.txt"),
        ("esc\x1b[31mred.txt", "esc[31mred.txt"),
        ("del\x7f.txt", "del.txt"),
        ("c1\x85\x9b.txt", "c1.txt"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("bom\ufeff.txt", "bom.txt"),
    ],
)
def test_control_and_format_characters_removed(raw: str, expected: str) -> None:
    assert clean_filename(raw) == expected


def test_bidi_override_removed() -> None:
    # "invoice\u202etxt.exe" displays as "invoiceexe.txt" in a bidi-aware renderer.
    cleaned = clean_filename("invoice\u202etxt.exe")
    assert cleaned == "invoicetxt.exe"
    for char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f":
        assert char not in clean_filename(f"a{char}b.txt")
        assert clean_filename(f"a{char}b.txt") == "ab.txt"


def test_no_control_or_format_characters_survive() -> None:
    every_control = "".join(
        chr(code) for code in range(0x3000) if unicodedata.category(chr(code)) in {"Cc", "Cf"}
    )
    cleaned = clean_filename(f"x{every_control}y.bin")
    assert cleaned == "xy.bin"


def test_nfc_normalisation() -> None:
    decomposed = "Cafe\u0301 re\u0301sume\u0301.txt"
    cleaned = clean_filename(decomposed)
    assert cleaned == "Caf\u00e9 r\u00e9sum\u00e9.txt"
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_filename("A\u030a.txt") == "\u00c5.txt"


def test_nfc_normalisation_after_removing_format_characters() -> None:
    """A zero-width character between a letter and its accent must not leave the name in NFD."""
    cleaned = clean_filename("e\u200b\u0301.txt")
    assert cleaned == "\u00e9.txt"
    assert unicodedata.is_normalized("NFC", cleaned)


def test_surrounding_whitespace_stripped() -> None:
    assert clean_filename("  notes.txt  ") == "notes.txt"
    assert clean_filename("dir/  notes.txt") == "notes.txt"
    assert clean_filename("inner  spaces kept.txt") == "inner  spaces kept.txt"


@pytest.mark.parametrize("raw", ["", " ", ".", "..", "...", "\x00", "\u202e", " \t\n ", "./."])
def test_empty_or_dots_only_falls_back(raw: str) -> None:
    assert clean_filename(raw) == FALLBACK_NAME


@pytest.mark.parametrize("raw", [".env", ".bashrc", "..hidden", "dir/.env", "a.", "..a"])
def test_dot_names_with_content_kept(raw: str) -> None:
    assert clean_filename(raw) == raw.split("/")[-1]


def test_non_ascii_names_kept() -> None:
    for name in [
        "\u65e5\u672c\u8a9e.txt",
        "\U0001f389 party.png",
        "\u0440\u0435\u0437\u044e\u043c\u0435.doc",
    ]:
        assert clean_filename(name) == name


def test_name_at_limit_unchanged() -> None:
    name = "a" * (MAX_NAME_BYTES - 4) + ".txt"
    assert len(name.encode("utf-8")) == MAX_NAME_BYTES
    assert clean_filename(name) == name


def assert_valid_truncation(cleaned: str, original: str, extension: str) -> None:
    encoded = cleaned.encode("utf-8")
    assert len(encoded) <= MAX_NAME_BYTES
    # Round trips: no split multi-byte character, no replacement characters.
    assert encoded.decode("utf-8") == cleaned
    assert "\ufffd" not in cleaned
    assert cleaned.endswith(extension)
    stem = cleaned[: len(cleaned) - len(extension)] if extension else cleaned
    assert stem
    assert original.startswith(stem)


def test_long_ascii_name_truncated_keeping_extension() -> None:
    name = "a" * 9996 + ".txt"
    cleaned = clean_filename(name)
    assert cleaned == "a" * (MAX_NAME_BYTES - 4) + ".txt"
    assert_valid_truncation(cleaned, name, ".txt")


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\u65e5", "\U0001f600"])
@pytest.mark.parametrize("extension", [".pdf", ".tar.gz", ".x", ".\u00e9\u00e9"])
def test_long_multibyte_name_truncated_on_character_boundary(char: str, extension: str) -> None:
    count = 10_000 // len(char.encode("utf-8"))
    name = char * count + extension
    assert len(name.encode("utf-8")) >= 10_000
    cleaned = clean_filename(name)
    kept_extension = extension.rsplit(".", 1)[-1]
    assert_valid_truncation(cleaned, name, "." + kept_extension)
    # As much of the stem as fits is kept: at most one character's worth of the budget is lost.
    suffix_bytes = len(("." + kept_extension).encode("utf-8"))
    stem_bytes = len(cleaned.encode("utf-8")) - suffix_bytes
    budget = MAX_NAME_BYTES - suffix_bytes
    assert budget - len(char.encode("utf-8")) < stem_bytes <= budget


@pytest.mark.parametrize("offset", range(4))
def test_truncation_never_splits_a_character_at_any_alignment(offset: int) -> None:
    name = "a" * offset + "\U0001f600" * 3000 + ".png"
    cleaned = clean_filename(name)
    assert_valid_truncation(cleaned, name, ".png")
    assert len(cleaned.encode("utf-8")) > MAX_NAME_BYTES - 4


def test_long_extension_not_kept() -> None:
    extension = "e" * (MAX_EXTENSION_CHARS + 1)
    name = "s" * 300 + "." + extension
    cleaned = clean_filename(name)
    assert len(cleaned.encode("utf-8")) == MAX_NAME_BYTES
    assert cleaned == name[:MAX_NAME_BYTES]


def test_extension_of_max_length_kept() -> None:
    extension = "e" * MAX_EXTENSION_CHARS
    name = "s" * 300 + "." + extension
    cleaned = clean_filename(name)
    assert cleaned.endswith("." + extension)
    assert len(cleaned.encode("utf-8")) == MAX_NAME_BYTES


def test_long_name_without_extension_truncated() -> None:
    name = "\u00e9" * 5000
    cleaned = clean_filename(name)
    assert cleaned == "\u00e9" * (MAX_NAME_BYTES // 2)
    assert len(cleaned.encode("utf-8")) == MAX_NAME_BYTES - 1


def test_long_dotfile_truncated() -> None:
    name = "." + "h" * 500
    cleaned = clean_filename(name)
    assert cleaned == name[:MAX_NAME_BYTES]


def test_random_names_are_clean() -> None:
    rng = random.Random(1234)
    alphabet = "ab./\\\x00\r\n\"';%\u202e\u200b\u00e9\u65e5\U0001f600 \t"
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        cleaned = clean_filename(raw)
        assert cleaned
        assert "/" not in cleaned
        assert "\\" not in cleaned
        assert len(cleaned.encode("utf-8")) <= MAX_NAME_BYTES
        assert not any(unicodedata.category(c) in {"Cc", "Cf"} for c in cleaned)
        assert cleaned.strip(".")
        assert clean_filename(cleaned) == cleaned or len(cleaned.encode()) == MAX_NAME_BYTES


# --- content_disposition ----------------------------------------------------------------

HEADER = re.compile(r"attachment; filename=\"([^\"]*)\"; filename\*=UTF-8''(\S*)")


def parse(header: str) -> tuple[str, str]:
    match = HEADER.fullmatch(header)
    assert match, header
    return match.group(1), match.group(2)


def assert_safe_fallback(fallback: str) -> None:
    assert fallback
    for char in fallback:
        assert 0x20 <= ord(char) <= 0x7E, repr(char)
        assert char not in '"\\%;'


@pytest.mark.parametrize(
    "name",
    [
        "report.pdf",
        "R\u00e9sum\u00e9 2024.pdf",
        "\u65e5\u672c\u8a9e\u306e\u30d5\u30a1\u30a4\u30eb.txt",
        "\U0001f389 party!.png",
        'quote"d.txt',
        "back\\slash.txt",
        "100% done; really.txt",
        "it's (1) [a] {b} & c+d=e#f?g.txt",
        "a'b''c.txt",
        "\u00a0nbsp.txt",
        FALLBACK_NAME,
    ],
)
def test_content_disposition_round_trips(name: str) -> None:
    header = content_disposition(name)
    assert header.startswith("attachment; ")
    assert "\r" not in header
    assert "\n" not in header
    header.encode("ascii")  # a header value must be plain ASCII
    fallback, encoded = parse(header)
    assert_safe_fallback(fallback)
    assert len(fallback) == len(name)
    assert unquote(encoded, encoding="utf-8", errors="strict") == name
    # RFC 8187 value-chars: attr-char or pct-encoded; no quotes, spaces or separators.
    assert re.fullmatch(r"(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})*", encoded)


def test_content_disposition_ascii_name_fallback_is_the_name() -> None:
    fallback, encoded = parse(content_disposition("plain-name_1.tar.gz"))
    assert fallback == "plain-name_1.tar.gz"
    assert encoded == "plain-name_1.tar.gz"


def test_content_disposition_fallback_replaces_unsafe_characters() -> None:
    fallback, _ = parse(content_disposition('a"b\\c%d;e\u00e9f.txt'))
    assert fallback == "a_b_c_d_e_f.txt"


def test_content_disposition_empty_name() -> None:
    header = content_disposition("")
    assert header.startswith("attachment; ")
    fallback, _ = parse(header)
    assert fallback == FALLBACK_NAME


@pytest.mark.parametrize(
    "raw",
    [
        "evil\r\nSet-Cookie: a=b.txt",
        'x"; filename="other.exe',
        "a\rb\nc\"d'e.txt",
        "\n\r",
        "name\u2028with\u2029separators.txt",
        "\x85next-line.txt",
    ],
)
def test_cleaned_names_never_yield_line_breaks(raw: str) -> None:
    header = content_disposition(clean_filename(raw))
    assert "\r" not in header
    assert "\n" not in header
    header.encode("ascii")
    fallback, encoded = parse(header)
    assert_safe_fallback(fallback)
    assert unquote(encoded) == clean_filename(raw)


def test_content_disposition_never_has_line_breaks_even_uncleaned() -> None:
    header = content_disposition("a\r\nb\x00c\u2028d")
    assert "\r" not in header
    assert "\n" not in header
    header.encode("ascii")
    assert unquote(parse(header)[1]) == "a\r\nb\x00c\u2028d"


def test_content_disposition_long_cleaned_name() -> None:
    name = clean_filename("\u65e5" * 5000 + ".txt")
    fallback, encoded = parse(content_disposition(name))
    assert_safe_fallback(fallback)
    assert unquote(encoded) == name
