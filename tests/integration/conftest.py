from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import Harness, make_prefix


@pytest.fixture
def harness(root: None, journald: None) -> Iterator[Harness]:
    yield from make_prefix()
