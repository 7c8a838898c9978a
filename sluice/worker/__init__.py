"""What runs in users' processes: the `App`, its task functions and the worker runtime."""

from .app import App, TaskFunction, TaskHandle
from .context import TaskContext, current_task

__all__ = ["App", "TaskContext", "TaskFunction", "TaskHandle", "current_task"]
