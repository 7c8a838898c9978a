"""Task ids (sluice/model.py): UUIDv7 strings, in the order they were made."""

from __future__ import annotations

import collections
import time
import uuid

from sluice.model import new_task_id, new_task_ids, time_ordered_id_floor


def test_ids_are_canonical_uuid7_with_their_millisecond() -> None:
    # A clock far behind the system's (a test's fake clock) gives ids its own time; the
    # system clock's ids never go back, so another test's clock set ahead would move
    # them on in this process.
    at = 1_234_567_890.123
    # Small runs format each id; from 64 on, a run is written a column at a time.
    for n in (1, 63, 64, 65, 2000):
        ids = new_task_ids(n, at)
        assert len(ids) == n
        for task_id in ids:
            parsed = uuid.UUID(task_id)
            assert str(parsed) == task_id  # lower case, dashes where RFC 9562 puts them
            assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
            assert parsed.int >> 80 == int(at * 1000)


def test_ids_made_one_after_another_increase_past_a_millisecond_s_sequence() -> None:
    ids = new_task_ids(10_000) + [new_task_id() for _ in range(100)] + new_task_ids(5000)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_the_random_bits_vary_in_every_position() -> None:
    columns = new_task_ids(4000)
    one_by_one = [i for _ in range(100) for i in new_task_ids(40)]
    for ids in (columns, one_by_one):
        variants = collections.Counter(i[19] for i in ids)
        assert set(variants) == set("89ab") and min(variants.values()) > 700
        for position in [*range(20, 23), *range(24, 36)]:
            assert len({i[position] for i in ids}) == 16, position
        # ... and independently of each other within an id (15 random hex digits).
        assert all(len(set(i[24:])) > 1 for i in ids)  # 12 equal digits: 1 in 16^11


def test_the_floor_sorts_before_every_id_of_its_time() -> None:
    at = time.time()
    assert time_ordered_id_floor(at) <= min(new_task_ids(100, at))


def test_a_clock_set_far_ahead_does_not_move_the_system_clock_s_ids_on() -> None:
    ahead = time.time() + 40 * 86_400  # a test's fake clock, weeks ahead
    assert uuid.UUID(new_task_id(ahead)).int >> 80 == int(ahead * 1000)
    now = time.time()
    assert 0 <= (uuid.UUID(new_task_id()).int >> 80) - int(now * 1000) < 1000
