"""Session ids: version-4 UUIDs in canonical form, made without the uuid module."""

from __future__ import annotations

import uuid

from orch.ids import new_session_id
from tests.unit.fresh import probe


def test_an_id_is_a_canonical_version_4_uuid() -> None:
    for _ in range(200):
        text = new_session_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = {new_session_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_making_an_id_loads_neither_uuid_nor_platform() -> None:
    out = probe("import os\n"
                "os.environ.pop('ORCH_SESSION_ID', None)\n"
                "import orch.api, orch.commands\n"
                "from orch.ids import new_session_id\n"
                "new_session_id(), orch.api._parent_id()\n"
                "out['loaded'] = sorted(m for m in ('uuid', 'platform') if m in sys.modules)")
    assert out["loaded"] == []
