import uuid

from armonik_core.ids import new_id, new_ids


def test_ids_are_distinct_version_4_uuids_in_canonical_form() -> None:
    ids = new_ids(1000)
    assert len(set(ids)) == 1000
    for text in ids[:50] + [new_id()]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert new_ids(0) == []
