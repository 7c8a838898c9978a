"""A server node: builds the engine's services, wires them, starts and stops them.

Nothing here decides anything. Each service takes the shared `Runtime` and its named
collaborators (docs/architecture.md draws who needs whom); the API layer reaches the
services through the attributes below. The order of construction is the order of
dependency: a service is built after everything it uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..clock import Clock, SystemClock
from ..config import Settings
from ..policy.aimd import Aimd
from ..policy.backpressure import Backpressure as BackpressurePolicy
from ..store import Store, open_bus, open_store
from .adaptive import AdaptivePools
from .asks import Asks
from .attempts import Attempts
from .audit import AuditLog
from .backpressure import Backpressure
from .blockers import Blockers
from .delays import Delays
from .direct import DirectDispatch
from .dispatcher import Dispatcher
from .fairness import Fairness
from .functions import Functions
from .gateway import Gateway
from .intake import Intake
from .limit_history import SAMPLE_S as HISTORY_S
from .limit_history import LimitHistory
from .logs import TaskLogs
from .meters import FLUSH_S, Meters
from .notifier import Notifier
from .outcomes import Outcomes
from .partitions import Partitions
from .pauses import Pauses
from .queues import Queues
from .quotas import Quotas
from .reaper import Reaper
from .receivers import Receivers
from .registry import Registry, Settling
from .retention import Retention
from .runtime import Runtime
from .scaling import ScalingSignal
from .schedules import Schedules
from .snapshot import SNAPSHOT_S, Snapshot
from .stats import TenantStats
from .targets import TICK_S, Targets
from .tasks import Tasks
from .tenants import Tenants
from .timers import Timers
from .topics import Topics

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = logging.getLogger("sluice.node")

CRON_INTERVAL_S = 1.0
FAIR_SYNC_S = 1.0  # how far one node's fair clock may lag the cluster's
BACKPRESSURE_TICK_S = 1.0
HOT_LOOK_S = 1.0


class Node:
    def __init__(
        self, settings: Settings, store: Store | None = None, clock: Clock | None = None,
        *, tracer_provider: TracerProvider | None = None,
    ) -> None:  # fmt: skip
        node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.rt = rt = Runtime(
            store=store or open_store(settings),
            clock=clock or SystemClock(),
            settings=settings,
            bus=open_bus(settings, node_id),
            node_id=node_id,
        )
        self.settings, self.store, self.clock, self.node_id = settings, rt.store, rt.clock, node_id
        self.registry = registry = Registry()
        settling = Settling()
        self.queues = queues = Queues(rt.bus)
        self.functions = functions = Functions(rt)
        self.receivers = receivers = Receivers(rt, functions)
        self.quotas = quotas = Quotas(rt, changed=queues.wake)
        policy = BackpressurePolicy(
            rt.clock.now(), random.Random(), settings.backpressure_interval_s
        )
        self.partitions = partitions = Partitions(rt, queues.resync, heavy=policy.detector)
        self.backpressure = backpressure = Backpressure(rt, quotas, partitions, policy)
        self.fairness = fairness = Fairness(rt, functions, quotas, partitions)
        self.pauses = pauses = Pauses(rt, fairness, queues)
        self.delays = delays = Delays(rt, fairness, queues)
        self.meters = meters = Meters(rt)
        self.outcomes = outcomes = Outcomes(rt, queues, delays, backpressure, meters, receivers)
        self.adaptive = adaptive = AdaptivePools(rt, registry, functions, queues)
        self.logs = logs = TaskLogs(rt)
        attempts = Attempts(rt, functions, pauses, adaptive, queues, settling, outcomes, logs,
                            meters=meters, receivers=receivers)  # fmt: skip
        spans = None
        if settings.tracing or tracer_provider is not None:
            from .tracing import ServerSpans  # imports OpenTelemetry: only when it is on

            spans = ServerSpans(tracer_provider)
        self.targets = targets = Targets(rt, registry, queues, attempts, spans)
        functions.on_change(targets.sync)
        self.asks = asks = Asks(rt, queues, registry, partitions, adaptive, settling, spans)
        self.dispatcher = Dispatcher(
            rt, queues, registry, functions=functions, quotas=quotas, fairness=fairness,
            partitions=partitions, adaptive=adaptive, asks=asks, settling=settling,
            spans=spans, meters=meters,
        )  # fmt: skip
        self.direct = direct = DirectDispatch(
            rt, queues, registry, functions=functions, quotas=quotas, partitions=partitions,
            adaptive=adaptive, meters=meters, spans=spans,
        )  # fmt: skip
        self.gateway = Gateway(rt, registry, functions, attempts, queues, logs)
        self.intake = intake = Intake(
            rt, functions=functions, quotas=quotas, pauses=pauses, fairness=fairness,
            backpressure=backpressure, queues=queues, delays=delays, meters=meters,
            direct=direct,
        )  # fmt: skip
        delays.direct = direct
        self.tasks = tasks = Tasks(rt, functions, queues, outcomes, registry, receivers)
        self.tenants = tenants = Tenants(rt)
        self.schedules = schedules = Schedules(rt, functions, fairness, queues, meters)
        self.topics = topics = Topics(rt, functions, intake)
        self.audit = audit = AuditLog(rt)
        self.notifier = Notifier(rt, functions, intake, topics, audit)
        self.reaper = reaper = Reaper(rt, registry, pauses, queues, outcomes, receivers)
        self.retention = retention = Retention(rt)
        self.blockers = blockers = Blockers(
            rt, registry, functions=functions, quotas=quotas, pauses=pauses,
            partitions=partitions, adaptive=adaptive, targets=targets,
        )  # fmt: skip
        self.snapshot = Snapshot(rt, blockers)
        self.limit_history = LimitHistory(rt.clock.now, self._aimd_limits)
        self.scaling = ScalingSignal(rt, functions, quotas, adaptive)
        self.stats = TenantStats(rt)
        self.timers = self._timers(reaper, schedules, retention, audit)
        self._loops: list[asyncio.Task[None]] = []
        self._hints: dict[str, Callable[[str], object]] = {  # bus hints, by kind
            "ready": queues.hint, "ask": asks.on_ask, "assigned": asks.on_assigned,
            "done": outcomes.wake, "cancel": tasks.stop_hint,
            "functions": functions.reload, "revoked": tenants.forget,
            "pauses": pauses.forget, "quotas": quotas.forget,
        }  # fmt: skip

    def _aimd_limits(self) -> list[tuple[tuple[str, str], Aimd]]:
        pools = list(self.adaptive.limits.items())
        return pools + [(key, conn.aimd) for key, conn in self.targets.items()]

    def _timers(
        self, reaper: Reaper, schedules: Schedules, retention: Retention, audit: AuditLog
    ) -> Timers:
        s = self.settings
        timers = Timers(self.rt, spread=True)
        timers.every("promote", s.promote_interval_s, self.delays.promote_once, lead=True)
        timers.every("expire", s.promote_interval_s, self.outcomes.expire_once, lead=True)
        timers.every("cron", min(CRON_INTERVAL_S, s.promote_interval_s), schedules.tick,
                     lead=True)  # fmt: skip
        timers.every("renew", s.heartbeat_s, reaper.renew_once)
        # Not at once: workers held tasks while this node was down and need a moment to
        # reconnect and renew their leases before any is judged lost.
        timers.every("reap", s.reap_interval_s, reaper.reap_once, lead=True,
                     first_after=s.lease_s)  # fmt: skip
        timers.every("purge", s.purge_interval_s, retention.purge_once, lead=True)
        timers.every("audit", s.purge_interval_s, audit.purge_once, lead=True)
        timers.every("logs", s.purge_interval_s, self.logs.purge_once, lead=True)
        timers.every("fair clock", FAIR_SYNC_S, self.fairness.sync)  # every node: its own
        timers.every("backpressure", BACKPRESSURE_TICK_S, self.backpressure.tick)
        # Partition leases renew at a third of their lifetime; hot tenants on their own.
        third = s.partition_ttl_s / 3
        timers.every("partitions", third, self.partitions.balance, first_after=third)
        timers.every("hot tenants", HOT_LOOK_S, self.partitions.find_hot,
                     first_after=HOT_LOOK_S)  # fmt: skip
        timers.every("targets", TICK_S, self.targets.tick)  # AIMD windows
        timers.every("pools", TICK_S, self.adaptive.tick)
        timers.every("limit history", HISTORY_S, self.limit_history.sample)
        # Counts: the leader's backlog snapshot, every node's read of it and its rollup.
        timers.every("snapshot", SNAPSHOT_S, self.snapshot.take_once, lead=True)
        timers.every("snapshot read", SNAPSHOT_S, self.snapshot.read_once,
                     first_after=SNAPSHOT_S)  # fmt: skip
        timers.every("rollup", FLUSH_S, self.meters.flush, first_after=FLUSH_S)
        timers.every("notify", s.notify_interval_s, self.notifier.send_once, lead=True)
        return timers

    @property
    def accepting(self) -> bool:
        """Whether submits are taken (false while starting and from the first signal)."""
        return self.intake.accepting

    @accepting.setter
    def accepting(self, value: bool) -> None:
        self.intake.accepting = value

    async def start(self) -> None:
        await self.store.open()
        await self.quotas.start()
        await self.fairness.start()
        await self.targets.start()
        await self.receivers.start()  # before any end is written: who is told of it
        await self.rt.bus.start(self._on_hint)
        await self.partitions.balance()  # before the first claim: which partitions are ours
        self._loops = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.timers.run(), name="timers"),
            asyncio.create_task(self.delays.run(), name="delays"),
        ]
        self.accepting = True

    async def stop(self) -> None:
        self.accepting = False
        for task in self._loops:
            # asyncio.wait_for may swallow a cancel that lands as its wait ends (Python
            # 3.11): ask again until the loop has stopped.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        await self.pauses.stop()
        await self.targets.stop()
        await self.notifier.stop()
        try:
            await self.partitions.release()
        except Exception:
            log.exception("could not hand back the partitions; their leases run out by themselves")
        try:
            await self.timers.step_down()
        except Exception:
            log.exception("could not hand back the timers lease; it runs out by itself")
        for conn in self.registry:
            await conn.close()
        try:
            await self.meters.flush()  # this node's last counts into the rollup
        except Exception:
            log.exception("could not write the last counts to the rollup")
        self.outcomes.close()
        await self.rt.bus.stop()
        await self.store.close()

    def _on_hint(self, kind: str, data: str) -> None:
        """A hint from another node (see store/bus.py); items are newline-separated."""
        if kind == "resync":
            self.queues.resync()
            self.functions.reload_all()
            self.tenants.forget_all()
            self.pauses.forget()
            self.quotas.resync()
            return
        handle = self._hints.get(kind)
        if handle is not None:
            for item in data.split("\n"):
                handle(item)
