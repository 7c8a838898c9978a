"""The HTTP client of the Sluice API: sync `Client` and async `AsyncClient`.

Imports no server code, so producers need only `pip install sluice`.
"""

from .http import AsyncClient, Client, discover
from .models import SubmitOutcome, Task

__all__ = ["AsyncClient", "Client", "SubmitOutcome", "Task", "discover"]
