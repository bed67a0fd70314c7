"""The templates' globals (app/web/filters.py): the htmx configuration every page carries."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from quart.typing import TestClientProtocol as QuartClient

from tests.helpers import (
    markup,
    page_path,
)

HTMX_CONFIG = re.compile(r"<meta name=\"htmx-config\" content='([^']*)'>")


def htmx_config(page: str) -> dict[str, Any]:
    match = HTMX_CONFIG.search(page)
    assert match is not None, "no htmx-config meta tag"
    return json.loads(html.unescape(match.group(1)))  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["home", "landing"])
async def test_htmx_meta_config_is_json_with_the_safe_settings(
    client: QuartClient, name: str
) -> None:
    page = await markup(await client.get(await page_path(client, name)))
    config = htmx_config(page)

    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["historyRestoreAsHxRequest"] is False
    assert config["historyCacheSize"] == 0
    handling = config["responseHandling"]
    assert isinstance(handling, list)
    # htmx uses the first entry whose code matches: client errors must be swapped in.
    for status in ("401", "403", "404", "410", "413", "422"):
        first = next(entry for entry in handling if re.search(entry["code"], status))
        assert first["swap"] is True, (status, first)
