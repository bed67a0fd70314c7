"""How a setting is declared and read: the kinds of value (text to value, or a message
naming the variable; value back to text; words for the README), and the helpers with which
app/config.py declares each setting once, as a field of ``Settings``."""

from __future__ import annotations

import dataclasses
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .formatting import human_bytes, human_duration


class SettingsError(ValueError):
    """A setting has a value the service cannot start with; the message says which and why."""


# --- rate limit specifications: "10/minute; 100/day" ----------------------------------

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*")

Limits = tuple[tuple[int, int], ...]  # (count, window in seconds), every one applies


class RateLimitSpecError(ValueError):
    pass


def parse_limits(text: str) -> Limits:
    """'10/minute; 100/day' -> ((10, 60), (100, 86400)). '20/10 seconds' works too."""
    limits = []
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        match = _SPEC.fullmatch(part)
        if match is None:
            raise RateLimitSpecError(f"expected COUNT/UNIT like 10/minute, got {part.strip()!r}")
        count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
        if count < 1 or multiple < 1:
            raise RateLimitSpecError(f"counts must be positive, got {part.strip()!r}")
        limits.append((count, multiple * _UNITS[unit]))
    if not limits:
        raise RateLimitSpecError("at least one limit is needed")
    return tuple(limits)


def format_limits(limits: Limits) -> str:
    """((10, 60), (100, 86400)) -> '10/minute; 100/day': what ``parse_limits`` reads back."""
    parts = []
    for count, seconds in limits:
        unit = next(name for name, size in reversed(_UNITS.items()) if seconds % size == 0)
        multiple = seconds // _UNITS[unit]
        parts.append(f"{count}/{unit}" if multiple == 1 else f"{count}/{multiple} {unit}s")
    return "; ".join(parts)


# --- kinds of value: text to value (or a message naming the variable), and back ------------

T = TypeVar("T")
Number = TypeVar("Number", int, float)


class Kind(ABC, Generic[T]):
    """How a variable's text becomes its value, and what the README says of it."""

    @abstractmethod
    def parse(self, name: str, raw: str) -> T:
        """``raw`` is stripped and not empty; a bad one raises ``SettingsError`` naming ``name``."""

    def format(self, value: T) -> str:
        """The text that ``parse`` reads back as ``value``."""
        return str(value)

    def show(self, value: T) -> str:
        """The value as the README's Default column writes it."""
        return f"`{self.format(value)}`"

    def accepts(self) -> str:
        """A sentence on the values accepted, beyond what the help text says; or nothing."""
        return ""


class Text(Kind[str]):
    def parse(self, name: str, raw: str) -> str:
        return raw


class Checked(Kind[T]):
    """Text with a check of its own (a URL, a host name, a hash...)."""

    def __init__(self, check: Callable[[str, str], T]) -> None:
        self._check = check

    def parse(self, name: str, raw: str) -> T:
        return self._check(name, raw)


class OrNone(Kind[T | None]):
    """A setting that may stay unset: ``None`` then (also when the kind reads the text as
    nothing, e.g. an address of only "/"), which the README explains."""

    def __init__(self, kind: Kind[T], unset: str = "") -> None:
        self._kind = kind
        self._unset = unset  # what unset means, e.g. "embedded Redis"

    def parse(self, name: str, raw: str) -> T | None:
        return self._kind.parse(name, raw) or None

    def format(self, value: T | None) -> str:
        return "" if value is None else self._kind.format(value)

    def show(self, value: T | None) -> str:
        if value is None:
            return f"*(unset: {self._unset})*" if self._unset else "*(unset)*"
        return self._kind.show(value)

    def accepts(self) -> str:
        return self._kind.accepts()


class Boolean(Kind[bool]):
    def parse(self, name: str, raw: str) -> bool:
        raw = raw.lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")

    def format(self, value: bool) -> str:
        return "true" if value else "false"


class Choice(Kind[T]):
    """One of a few words (case-insensitive), each standing for a value."""

    def __init__(self, values: Mapping[str, T]) -> None:
        self._values = values

    def parse(self, name: str, raw: str) -> T:
        raw = raw.lower()
        if raw not in self._values:
            raise SettingsError(f"{name}: expected {' or '.join(self._values)}, got {raw!r}")
        return self._values[raw]

    def format(self, value: T) -> str:
        return next(word for word, meant in self._values.items() if meant == value)

    def accepts(self) -> str:
        return "Either " + " or ".join(f"`{word}`" for word in self._values) + "; nothing else."


# What a count is of, in words for the README: 1073741824 bytes -> "1 GiB".
_IN_WORDS: dict[str, Callable[[int], str]] = {
    "bytes": human_bytes,
    "bytes per second": lambda count: f"{human_bytes(count)}/s",
    "KiB": lambda count: human_bytes(count * 1024),
    "seconds": human_duration,
}


class _Bounded(Kind[Number]):
    what = ""  # "Whole number" or "Number", for the README

    def __init__(
        self, minimum: Number | None = None, maximum: Number | None = None, unit: str | None = None
    ) -> None:
        self.minimum: Number | None = minimum
        self.maximum: Number | None = maximum
        self.unit = unit

    def show(self, value: Number) -> str:
        return f"`{self.format(value)}`{self._in_words(value)}"

    def accepts(self) -> str:
        what = f"{self.what} of {self.unit}" if self.unit else self.what
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"{what}, from {self._bound(low)} to {self._bound(high)}."
        if low is not None:
            return f"{what}, at least {self._bound(low)}."
        return f"{what}, at most {self._bound(high)}." if high is not None else f"{what}."

    def _bound(self, value: Number) -> str:
        return f"{self.format(value)}{self._in_words(value)}"

    def _in_words(self, value: Number) -> str:
        """' (1 GiB)' where the words say more than the figure, else nothing."""
        if self.unit is None or value != int(value):
            return ""
        words = _IN_WORDS[self.unit](int(value))
        return "" if words.startswith(self.format(value)) else f" ({words})"


class Integer(_Bounded[int]):
    what = "Whole number"

    def parse(self, name: str, raw: str) -> int:
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
        return _in_range(name, value, self.minimum, self.maximum)


class Real(_Bounded[float]):
    what = "Number"

    def parse(self, name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise SettingsError(f"{name}: expected a finite number, got {raw!r}")
        return _in_range(name, value, self.minimum, self.maximum)

    def format(self, value: float) -> str:
        return str(int(value)) if float(value).is_integer() else repr(float(value))


def _in_range(name: str, value: Number, minimum: Number | None, maximum: Number | None) -> Number:
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: {value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}: {value} is above the maximum of {maximum}")
    return value


class SecondsList(Kind[tuple[int, ...]]):
    """Comma-separated whole seconds, each at least 1; read sorted, without repeats."""

    def parse(self, name: str, raw: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise SettingsError(
                f"{name}: expected comma-separated whole seconds, got {raw!r}"
            ) from None
        if not values or any(value < 1 for value in values):
            raise SettingsError(f"{name}: needs at least one value, each at least 1 second")
        return tuple(sorted(set(values)))

    def format(self, value: tuple[int, ...]) -> str:
        return ",".join(map(str, value))


class Words(Kind[tuple[str, ...]]):
    """Comma-separated words, read in lower case."""

    def parse(self, name: str, raw: str) -> tuple[str, ...]:
        words = tuple(word.strip().lower() for word in raw.split(",") if word.strip())
        if not words:
            raise SettingsError(f"{name}: expected comma-separated words, got {raw!r}")
        return words

    def format(self, value: tuple[str, ...]) -> str:
        return ",".join(value)

    def show(self, value: tuple[str, ...]) -> str:
        return ", ".join(value)


class RateLimits(Kind[Limits]):
    def parse(self, name: str, raw: str) -> Limits:
        try:
            return parse_limits(raw)
        except RateLimitSpecError as error:
            raise SettingsError(f"{name}: {error}") from None

    def format(self, value: Limits) -> str:
        return format_limits(value)


class Directory(Kind[Path]):
    """A directory, made absolute; it may not exist yet (serve creates it)."""

    def parse(self, name: str, raw: str) -> Path:
        path = Path(raw).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise SettingsError(f"{name}: {path} exists and is not a directory")
        return path


class Env:
    """The environment as the settings read it: noting every name asked for."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.asked: list[str] = []  # every name read, in order

    def raw(self, name: str) -> str:
        self.asked.append(name)
        return self._environ.get(name, "")

    def is_set(self, name: str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def unknown_names(self, prefix: str) -> list[str]:
        """Variables with our prefix that nothing read: a typo silently meaning a default."""
        return sorted(
            name for name in self._environ if name.startswith(prefix) and name not in self.asked
        )


# --- declarations ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Variable(Generic[T]):
    """One environment variable: its name, its kind of value, its value when unset or blank,
    and its row in the README's settings table."""

    name: str
    kind: Kind[T]
    default: Callable[[], T]
    help: str
    shown: str | None = None  # the table's Default column, where the value alone would mislead

    def read(self, env: Env) -> T:
        raw = env.raw(self.name).strip()
        return self.kind.parse(self.name, raw) if raw else self.default()

    def shown_default(self) -> str:
        return self.shown or self.kind.show(self.default())

    def meaning(self) -> str:
        return " ".join(filter(None, (self.help, self.kind.accepts())))


@dataclass(frozen=True)
class Computed(Generic[T]):
    """A default worked out when it is needed, e.g. from the machine."""

    make: Callable[[], T]
    words: str  # for the README


@dataclass(frozen=True)
class Declared:
    """What a field of ``Settings`` is read from: one variable (part ""), or several whose
    values ``build`` combines (e.g. the three Argon2id parameters)."""

    parts: Mapping[str, Variable[Any]]
    build: Callable[..., Any] | None = None
    required: bool = False  # no default in the dataclass; from_env still has one

    def read(self, env: Env) -> Any:
        if self.build is None:
            return self.parts[""].read(env)
        return self.build(**{part: variable.read(env) for part, variable in self.parts.items()})

    def values(self, value: Any) -> Iterator[tuple[Variable[Any], Any]]:
        """Each variable with its part of the field's ``value``."""
        for part, variable in self.parts.items():
            if not part:
                yield variable, value
            else:
                yield variable, value[part] if isinstance(value, Mapping) else getattr(value, part)


_DECLARED = "onetimeshare.setting"  # the key of a field's declaration in its metadata


def variable(
    name: str, kind: Kind[T], default: T | Computed[T], help: str, *, shown: str | None = None
) -> Variable[T]:
    """A variable that is one part of a field (see ``combined``)."""
    if isinstance(default, Computed):
        return Variable(name, kind, default.make, help, shown or default.words)
    return Variable(name, kind, lambda: default, help, shown)


def setting(
    name: str, kind: Kind[T], default: T | Computed[T], help: str, *, shown: str | None = None
) -> T:
    """A field of ``Settings`` read from one variable, ``default`` when that is unset."""
    declared = Declared({"": variable(name, kind, default, help, shown=shown)})
    metadata = {_DECLARED: declared}
    if isinstance(default, Computed):
        return field(default_factory=default.make, metadata=metadata)
    return field(default=default, metadata=metadata)


def combined(build: Callable[..., T], **parts: Variable[Any]) -> T:
    """A field of ``Settings`` built from several variables: ``build(part=value, ...)``."""
    declared = Declared(parts, build)
    return field(
        default_factory=lambda: build(**{part: var.default() for part, var in parts.items()}),
        metadata={_DECLARED: declared},
    )


def required(
    name: str, kind: Kind[T], unset: str, help: str, *, shown: str | None = None
) -> dict[str, Declared]:
    """The metadata of a field that ``Settings`` must be given (``field(metadata=...)``, so
    type checkers know it has no default); unset, ``from_env`` reads ``unset`` instead."""
    read_unset = Variable(name, kind, lambda: kind.parse(name, unset), help, shown)
    return {_DECLARED: Declared({"": read_unset}, required=True)}


def declarations(settings_class: type[Any]) -> Iterator[tuple[str, Declared]]:
    """Each field of the dataclass that is read from the environment, with its declaration."""
    for declared_field in dataclasses.fields(settings_class):
        if _DECLARED in declared_field.metadata:
            yield declared_field.name, declared_field.metadata[_DECLARED]
