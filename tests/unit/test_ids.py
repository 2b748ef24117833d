import time
import uuid

from armonik_core.ids import new_id, new_ids


def test_ids_are_distinct_version_7_uuids_in_canonical_form() -> None:
    ids = new_ids(1000)
    assert len(set(ids)) == 1000
    for text in ids[:50] + [new_id()]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert new_ids(0) == []


def test_ids_of_a_batch_sort_in_order_and_carry_the_time() -> None:
    before = int(time.time() * 1000)
    ids = new_ids(300_000)
    after = int(time.time() * 1000)
    assert ids == sorted(ids)
    millis = int(ids[0].replace("-", "")[:12], 16)
    assert before <= millis <= after


def test_later_batches_sort_after_earlier_ones() -> None:
    first = new_ids(10)
    time.sleep(0.002)
    assert max(first) < min(new_ids(10))


def test_single_ids_are_distinct_version_7_uuids_carrying_their_millisecond() -> None:
    before = int(time.time() * 1000)
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond, and so the start `new_id` reuses
    after = int(time.time() * 1000)
    assert len(set(ids)) == len(ids)
    for text in ids[::500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(text.replace("-", "")[:12], 16) <= after
    assert new_ids(1)[0] != new_ids(1)[0]
