"""Whether blocking code runs as a Jupyter cell: the one place a running loop may be blocked.

An IPython kernel (ipykernel) runs asyncio in the thread that executes cells, and executes
each cell inside one of its own tasks, so ``sniffio`` sees a running loop in every cell.
Yet a cell is not a coroutine of an application: the kernel's task does nothing else until
the cell is done, exactly as if the cell ran in a plain thread. So the rule is:

* the blocking API is allowed when the current asyncio task is one the kernel runs a cell
  in: its coroutine is a function of ``ipykernel`` (plain cells run in the kernel's
  message task) or of ``IPython`` (a cell with top-level ``await`` runs in a task of its
  own, ``InteractiveShell.run_cell_async``);
* it is refused in any other task of a running loop - a task the application (or a
  notebook user, with ``asyncio.create_task``) made, Trio, a real async program - because
  there blocking would freeze work that goes on concurrently.

This module imports nothing from ipykernel: it only looks at the running task.

One limit: the kernel interrupts a cell with top-level ``await`` by cancelling its task, not
with ``KeyboardInterrupt``, and a blocking call cannot see that until it returns; plain cells
get ``KeyboardInterrupt``, which cancels the call on the server at once.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["in_kernel_cell"]

_CELL_RUNNERS = frozenset({"ipykernel", "IPython"})
"""Packages whose coroutines are the root of the task a cell runs in."""


def in_kernel_cell() -> bool:
    """Whether this code runs in the task in which an IPython kernel executes cells."""
    if "ipykernel" not in sys.modules:  # not a kernel (a terminal IPython runs no loop)
        return False
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop runs in this thread
        return False
    if task is None:
        return False
    frame = getattr(task.get_coro(), "cr_frame", None)
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return isinstance(module, str) and module.split(".")[0] in _CELL_RUNNERS
