"""The worker's per-attempt log buffer (worker/capture.py): bounded to a head and a tail,
shipped in batches, with the shipped lines that fell out of the tail named for deletion."""

from __future__ import annotations

import asyncio
import itertools
import logging

from sluice.worker import capture
from sluice.worker.capture import LINE_BYTES, LINE_OVERHEAD, AttemptLog


def cost(message: str) -> int:
    return len(message) + len("app") + LINE_OVERHEAD


def test_lines_past_the_budget_keep_the_head_and_the_tail() -> None:
    log = AttemptLog(budget=4000)
    for i in range(1000):
        log.add(20, "log", "app", f"line {i:04d}")
    lines, drop = log.take(final=True)
    assert drop is None  # nothing was shipped before: nothing to delete
    kept = [line.message for line in lines]
    assert kept[0] == "line 0000" and kept[-1] == "line 0999"
    assert sum(cost(m) for m in kept) <= 4000
    seqs = [line.seq for line in lines]
    gap = [b - a for a, b in itertools.pairwise(seqs) if b - a > 1]
    assert len(gap) == 1 and log.dropped == 1000 - len(lines)


def test_shipped_tail_lines_that_fall_out_are_named_for_deletion() -> None:
    log = AttemptLog(budget=4000)
    shipped = []
    for batch in range(20):
        for i in range(50):
            log.add(20, "log", "app", f"b{batch:02d} line {i:02d}")
        lines, drop = log.take()
        shipped += [line.seq for line in lines]
        if drop is not None:
            shipped = [s for s in shipped if not drop[0] <= s < drop[1]]
    assert sum(1 for _ in shipped) * cost("b00 line 00") <= 4000 + cost("b00 line 00")
    assert shipped[0] == 0 and shipped[-1] == 999  # the head and the very last line stay


def test_printed_text_becomes_whole_lines_and_long_lines_are_cut() -> None:
    log = AttemptLog()
    log.write("stdout", "par")
    log.write("stdout", "tial\nnext")
    log.write("stderr", "x" * (LINE_BYTES + 10) + "\n")
    lines, _ = log.take(final=True)
    assert [(line.stream, line.message[:8]) for line in lines] == [
        ("stdout", "partial"),
        ("stderr", "xxxxxxxx"),
        ("stdout", "next"),
    ]
    assert lines[1].message.endswith(capture.CUT) and lines[1].level == logging.ERROR


async def test_concurrent_asyncio_tasks_capture_into_their_own_logs() -> None:
    capture.install()
    logger = logging.getLogger("capture.test")

    async def attempt(n: int) -> AttemptLog:
        log = AttemptLog()
        capture.attach(log)
        for i in range(3):
            logger.info("task %d line %d", n, i)
            print(f"print {n}")
            await asyncio.sleep(0)
        return log

    logs = await asyncio.gather(*(attempt(n) for n in range(10)))
    for n, log in enumerate(logs):
        lines, _ = log.take(final=True)
        assert {line.message for line in lines} == {f"task {n} line {i}" for i in range(3)} | {
            f"print {n}"
        }
