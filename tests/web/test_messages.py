"""Words at the edge: every problem the code raises has its sentence and title in
web/messages.py, with the values it is raised with, and no sentence is left unsaid.

Read from the source: each raise of a Problem names its sentence's key as a literal
(or, with none, the key is its code), so the keys are what the code says they are.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

import onetimeshare
from onetimeshare.errors import Problem
from onetimeshare.web.messages import SENTENCES, TITLES, message

PACKAGE = Path(onetimeshare.__file__).parent


def problem_kinds() -> dict[str, type[Problem]]:
    kinds: dict[str, type[Problem]] = {}
    pending = list(Problem.__subclasses__())
    while pending:
        kind = pending.pop()
        kinds[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return kinds


@dataclass(frozen=True)
class Raise:
    where: str
    kind: type[Problem]
    key: str
    params: frozenset[str]


def raises_in_the_code() -> list[Raise]:
    kinds = problem_kinds()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            name = function.id if isinstance(function, ast.Name) else None
            if isinstance(function, ast.Attribute):
                name = function.attr
            kind = kinds.get(name or "")
            if kind is None:
                continue
            where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
            key = kind.code
            if node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{where}: a problem's key must be a literal"
                )
                key = first.value
            params = frozenset(keyword.arg for keyword in node.keywords if keyword.arg)
            found.append(Raise(where, kind, key, params))
    return found


def test_the_code_raises_problems_in_many_places() -> None:
    raises = raises_in_the_code()
    assert len(raises) > 40
    assert {"domain", "web"} <= {found.where.split("/")[0] for found in raises}


def test_every_problem_raised_has_words_and_every_sentence_is_used() -> None:
    raised = {found.key for found in raises_in_the_code()}
    assert sorted(raised - set(SENTENCES)) == [], "raised without words"
    assert sorted(set(SENTENCES) - raised) == [], "words nobody says"


def test_every_sentence_takes_the_values_it_is_raised_with() -> None:
    for found in raises_in_the_code():
        words = inspect.signature(SENTENCES[found.key])
        try:
            words.bind(**dict.fromkeys(found.params, 1))
        except TypeError as error:
            raise AssertionError(f"{found.where}: {found.key} {sorted(found.params)}") from error


def test_every_kind_of_problem_has_a_title() -> None:
    codes = {kind.code for kind in problem_kinds().values()}
    assert codes == set(TITLES)


def test_the_words_are_said_as_before() -> None:
    from onetimeshare.errors import InvalidInput, ShareGone, UploadTooLarge, WrongPassword

    assert message(WrongPassword(tries_left=1)) == (
        "Wrong password. 1 try left before the share is destroyed."
    )
    assert message(WrongPassword(tries_left=3)) == (
        "Wrong password. 3 tries left before the share is destroyed."
    )
    assert message(UploadTooLarge(limit_bytes=8 * 1024 * 1024)) == "Files can be at most 8 MiB."
    assert message(ShareGone(reason="revoked")) == (
        "The sender revoked this share before it was downloaded."
    )
    assert message(InvalidInput("password_too_long", limit_bytes=1024)) == (
        "The password can be at most 1024 bytes long."
    )
