"""The hand-written `__init__`s of frozen messages, events and actions.

They write `__dict__` directly instead of the dataclass's `object.__setattr__` per
field (consensus/messages.py, consensus/events.py), so nothing ties them to the field
list any more: a field added to a class but not to its `__init__` would be silently
missing. These tests compare each with what @dataclass itself would generate.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from consensus import events as ev
from consensus import messages as wire

HAND_WRITTEN = [cls for module in (wire, ev) for cls in vars(module).values()
                if isinstance(cls, type) and dataclasses.is_dataclass(cls)
                and cls.__module__ == module.__name__
                and "__init__" in vars(cls) and not cls.__dataclass_params__.init]


def test_the_frequent_messages_and_events_have_one() -> None:
    names = {cls.__name__ for cls in HAND_WRITTEN}
    assert {"PrePrepare", "Prepare", "Commit", "Checkpoint", "Executed", "Signed",
            "MessageArrived", "RequestsArrived", "TimerFired", "BlockExecuted", "Persist",
            "Send", "Broadcast", "Deliver", "SetTimer", "CancelTimer"} <= names


@pytest.mark.parametrize("cls", HAND_WRITTEN, ids=lambda c: c.__name__)
def test_signature_names_every_field_in_order_with_its_default(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]


@pytest.mark.parametrize("cls", HAND_WRITTEN, ids=lambda c: c.__name__)
def test_instances_are_frozen_and_equal_to_a_field_by_field_copy(cls: type) -> None:
    values = [object() for _ in dataclasses.fields(cls)]
    made = cls(*values)
    assert [getattr(made, f.name) for f in dataclasses.fields(cls)] == values
    assert made == dataclasses.replace(made) and hash(made) == hash(dataclasses.replace(made))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, 1)
    assert made != cls(*values[:-1], object())
