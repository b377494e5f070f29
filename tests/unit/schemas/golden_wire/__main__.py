"""``python -m tests.unit.schemas.golden_wire``: rewrite the golden wire files."""

from tests.unit.schemas.golden_wire import record

record()
