"""Console entry points of the nodes (``stereo_depth_node``, ``mono_depth_node``, ``camera_source``).

Ctrl-C is quiet from the process's first instant: until ``run_node`` installs its own handler
(after the node's module and its libraries are imported, about a second), SIGINT / SIGTERM
end the process at once with status 0 (``os._exit``: an exception raised in the middle of a C
extension's import, e.g. numpy's, would surface as an ImportError traceback). Nothing ROS exists
yet then, so there is nothing to clean up.
"""
from __future__ import annotations

import importlib
import os
import signal


def _exit_quietly(signum: int, frame: object) -> None:
    os._exit(0)


def _run(module: str, args: list[str] | None = None) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _exit_quietly)
    importlib.import_module(f'depth_ros.nodes.{module}').main(args)


def stereo(args: list[str] | None = None) -> None:
    """``stereo_depth_node``."""
    _run('stereo', args)


def mono(args: list[str] | None = None) -> None:
    """``mono_depth_node``."""
    _run('mono', args)


def camera_source(args: list[str] | None = None) -> None:
    """``camera_source``."""
    _run('camera_source', args)
