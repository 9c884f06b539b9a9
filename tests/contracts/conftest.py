"""Fixtures for the contract tests; the helpers themselves live in contract_chain.py."""

from __future__ import annotations

from typing import Callable

import pytest

from contract_chain import Chain, new_chain


@pytest.fixture
def chain() -> Chain:
    return new_chain()


@pytest.fixture
def make_chain() -> Callable[..., Chain]:
    return new_chain
