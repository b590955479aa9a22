"""Request bodies the routes must answer with 400, whatever the JSON parser raises."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from batch_image_processing.utils.batch.http_routes import Target, _target_from


class FakeRequest:
    """What the handler reads of a request: its body parsed as JSON."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def json(self) -> object:
        return json.loads(self.text)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                                  "", "{", "[1]", "null", '"x"', '{"node_id": 1.5}', '{"node_id": ""}',
                                  '{"node_id": true}', "1" * 5000, '{"node_id": "1", "workflow_id": 7}',
                                  '{"node_id": "1", "all_servers": "yes"}'])
def test_malformed_bodies_are_400_never_500(text: str) -> None:
    """Issue 11 #9: a deeply nested body raised RecursionError (not a ValueError): 500."""
    target, error = asyncio.run(_target_from(FakeRequest(text), web, allow_all=True))
    assert target is None and error is not None and error.status == 400


def test_a_good_body_gives_the_node_id() -> None:
    assert asyncio.run(_target_from(FakeRequest('{"node_id": 5}'), web, allow_all=False)) == (Target("5"), None)
    assert asyncio.run(_target_from(FakeRequest('{"all": true}'), web, allow_all=True)) == (Target(None), None)
    both = FakeRequest('{"node_id": "5", "workflow_id": "wf", "all_servers": true}')
    assert asyncio.run(_target_from(both, web, allow_all=False)) == (Target("5", "wf", True), None)
