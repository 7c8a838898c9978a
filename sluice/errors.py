"""The error taxonomy. Every error Sluice raises derives from `SluiceError`; those of one
layer only live in that layer's module (named on the right).

    SluiceError
    ├── ClientError                 the caller asked for something wrong (HTTP 4xx)
    │   ├── InvalidRequest          400  malformed body, wrong type, unknown field, bad value
    │   ├── PayloadTooLarge         413  payload or batch over its limit
    │   ├── Unauthorized            401  missing or unknown API key
    │   ├── Forbidden               403  the server's policy refuses it (an internal target)
    │   ├── NotFound                404  no such task/function for this tenant
    │   ├── Conflict                409
    │   ├── Unprocessable           422  well-formed, but a rule the schema cannot state
    │   │                                refuses it (a cron that never fires, min > max)
    │   ├── QuotaExceeded           429  a tenant quota (Retry-After)
    │   ├── TenantThrottled         429  overload: this tenant is over its share (Retry-After)
    │   └── TooManyRequests         429  an abuse limit: streams, connections, failed keys
    ├── Unavailable                 503  the server is starting or stopping (Retry-After)
    │   └── Overloaded              503  the whole server is overloaded (Retry-After)
    ├── TaskError                   raised by handlers to steer retries
    │   ├── Reject                  not retryable: the task goes straight to dead
    │   ├── Retry                   retry at a time of the handler's choosing
    │   └── Throttled               the downstream is overloaded: retry later
    ├── RemoteError                 an error answer from a server, as the client sees it
    ├── TaskFailed                  `handle.result()` of a task that ended without success
    ├── ResultTimeout               `handle.result(timeout=)` ran out of time
    ├── InvalidSignature            (client) a webhook whose signature or timestamp fails
    ├── EgressRefused               (engine/egress.py; also an OSError) an address the
    │                               server may not call
    ├── ProtocolError               (engine/gateway.py) a frame where it may not come
    ├── BadFrame                    (api/workers.py) an empty or oversized frame
    ├── FatalWorkerError            (worker/runtime.py) the server refused this worker
    ├── ResultRefused               (worker/runtime.py) a result the server would not keep
    ├── IsolationError              (worker/isolation.py) process isolation cannot work
    │                               here (the App is not importable by a child)
    ├── CgroupUnavailable           (worker/cgroups.py) no cgroup v2 memory limit for
    │                               children here (the reason); rlimits hold them
    └── ProfileError                (cli/profiles.py) a CLI profile that cannot be used

The API maps each to one answer in `sluice.api.errors`.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Root of every Sluice error."""


class ClientError(SluiceError):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class InvalidRequest(ClientError):
    status = 400
    code = "invalid_request"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class Unauthorized(ClientError):
    status = 401
    code = "unauthorized"


class Forbidden(ClientError):
    """The server's own policy refuses the request (not the caller's key): a target on
    an address the operator does not allow."""

    status = 403
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class Unprocessable(ClientError):
    """Well-formed and schema-valid, but refused by a rule JSON Schema cannot state: a
    cross-field rule (priority_min above priority_max), a time relative to now, a cron
    expression that never fires. 400 means the request breaks the published schema."""

    status = 422
    code = "unprocessable"


class QuotaExceeded(ClientError):
    """A tenant's quota refuses the request for now: 429 with Retry-After."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class TenantThrottled(ClientError):
    """The server is overloaded and this tenant sends more than its fair share: 429 with
    Retry-After; the body names the scope ("tenant")."""

    status = 429
    code = "tenant_throttled"
    scope = "tenant"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, field=None)
        self.retry_after_s = retry_after_s


class TooManyRequests(ClientError):
    """An abuse limit (open streams or connections per key, failed keys per address):
    429 with Retry-After."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(SluiceError):
    status = 503
    code = "unavailable"
    scope: str | None = None

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class Overloaded(Unavailable):
    """The whole server is overloaded (not one tenant): 503 with Retry-After, scope
    "global"."""

    code = "overloaded"
    scope = "global"


class TaskError(SluiceError):
    """Base for the exceptions a handler raises to steer what happens next."""


class Reject(TaskError):
    """Raise to fail the task for good: no retry, straight to dead."""


class Retry(TaskError):
    """Raise to be retried after `delay` seconds (default: the backoff policy)."""

    def __init__(self, delay: float | None = None, message: str = "retry requested") -> None:
        super().__init__(message)
        self.delay = delay


class Throttled(TaskError):
    """Raise when a downstream said "slow down"; retried after `retry_after` seconds."""

    def __init__(self, retry_after: float | None = None, message: str = "throttled") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteError(SluiceError):
    """An error answer from the Sluice server, seen by the client."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class TaskFailed(SluiceError):
    """`handle.result()` on a task that ended without success."""

    def __init__(self, task_id: str, state: str, error: str | None) -> None:
        super().__init__(f"task {task_id} ended {state}: {error or 'no error recorded'}")
        self.task_id = task_id
        self.state = state
        self.error = error


class ResultTimeout(SluiceError):
    """`handle.result(timeout=)` ran out of time before the task ended."""

    def __init__(self, task_id: str, state: str) -> None:
        super().__init__(f"task {task_id} is still {state}")
        self.task_id = task_id
        self.state = state


class InvalidSignature(SluiceError):
    """A webhook delivery that `sluice.verify_webhook` refuses: no signature matches the
    secret, or its timestamp is too old or too far ahead."""
