"""A disconnected worker's wait before it tries again (issue 18 point 6): backoff with
jitter, but while it holds tasks at most a fifth of the lease, so that a server that
restarts under a long task (and waits one lease before judging any lost) finds the
worker back and the lease renewed, even with a 2 s lease."""

from __future__ import annotations

import pytest

from sluice.worker.runtime import RECONNECT_MAX_S, reconnect_wait


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_an_idle_worker_backs_off_with_jitter_up_to_the_maximum(jitter: float) -> None:
    assert reconnect_wait(0.1, jitter, False, 2.0) == pytest.approx(0.1 * (0.5 + jitter))
    assert reconnect_wait(RECONNECT_MAX_S, jitter, False, 2.0) == pytest.approx(
        RECONNECT_MAX_S * (0.5 + jitter)
    )


def test_a_worker_holding_tasks_comes_back_within_a_fifth_of_its_lease() -> None:
    assert reconnect_wait(RECONNECT_MAX_S, 0.999, True, 2.0) == pytest.approx(0.4)
    assert reconnect_wait(0.1, 0.5, True, 2.0) == pytest.approx(0.1)  # sooner stays sooner
    assert reconnect_wait(RECONNECT_MAX_S, 0.999, True, 30.0) == pytest.approx(6.0)
    # Before its first welcome it knows no lease: the plain backoff.
    assert reconnect_wait(1.0, 0.0, True, 0.0) == pytest.approx(0.5)
