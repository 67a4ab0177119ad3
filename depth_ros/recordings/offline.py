"""A depth node run offline: the real ``StereoDepthNode`` / ``MonoDepthNode`` (same parameters,
same validation, same ``process``) in a private rclpy context that is never spun, its outputs
handed back through ``DepthOutputs.sink`` instead of going to DDS. Every message is therefore
exactly what the node would publish for the same input set: same topics (under the node's
namespace), stamps, frame ids, encodings and decimation."""
from __future__ import annotations

import time

from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter

from ..nodes.base import FrameError
from ..nodes.diagnostics import ERROR


class OfflineError(Exception):
    """The node cannot run as asked (model not loadable, parameter rejected)."""


class OfflineNode:
    """``StereoDepthNode`` (or ``MonoDepthNode`` with ``mono``) in namespace ``namespace`` with
    parameter ``params`` and topic ``remaps`` ({node-relative name: topic}, as on the command
    line). ``process(msgs)`` returns [(topic, message), ...] or raises FrameError."""

    def __init__(self, mono: bool, namespace: str, params: dict[str, Any], remaps: dict[str, str],
                 log_level: str = 'warn') -> None:
        from ..nodes.mono import MonoDepthNode
        from ..nodes.stereo import StereoDepthNode
        self.mono = mono
        self.context = Context()
        rclpy.init(args=['--ros-args', '--log-level', log_level], context=self.context)
        overrides = [Parameter(k, value=v) for k, v in {**params, 'lazy': False}.items()]
        cli = ['--ros-args'] + [a for src, dst in remaps.items() for a in ('-r', f'{src}:={dst}')]
        try:
            self.node = (MonoDepthNode if mono else StereoDepthNode)(
                context=self.context, namespace=namespace, parameter_overrides=overrides, cli_args=cli,
                enable_rosout=False, start_parameter_services=False)
        except Exception:
            self.close()
            raise
        self._out: list[tuple[str, Any]] = []
        self.node.outputs.sink = lambda topic, msg: self._out.append((topic, msg))
        try:
            self._check(params)
        except OfflineError:
            self.close()
            raise

    def _check(self, params: dict[str, Any]) -> None:
        """Refuse what the node would only log: rejected parameters, a model that did not load."""
        for name, value in params.items():
            if name not in self.node.params.specs:
                raise OfflineError(f'the {"mono" if self.mono else "stereo"} node has no parameter {name!r}')
            got = self.node.params.get(name)
            if got != value and not (isinstance(got, float) and got == float(value)):
                raise OfflineError(f'parameter {name}={value!r} was rejected (see the log above)')
        condition = self.node.diagnostics.condition
        if self.node.estimator is None or (condition and condition[0] >= ERROR):
            raise OfflineError(condition[1] if condition else f'model {params.get("model")!r} could not be loaded')

    @property
    def estimator(self) -> Any:
        return self.node.estimator

    def set_camera_info(self, info: Any) -> None:
        """The mono node's latest camera_info (what its camera_info subscription stores)."""
        self.node._on_info(info)

    def process(self, msgs: tuple[Any, ...]) -> list[tuple[str, Any]]:
        """The node's outputs for one input set (stereo: left, left_info, right, right_info;
        mono: (image,) after ``set_camera_info``); FrameError for unusable input."""
        self._out = []
        self.node._received = time.monotonic()  # what the node's worker sets: latency_budget_ms counts from here
        try:
            self.node.process(msgs)
        except FrameError:
            raise
        except Exception as e:  # the node's worker would report it and keep serving
            raise FrameError('internal', f'unexpected error while processing a frame: {type(e).__name__}: {e}',
                             ERROR) from e
        return self._out

    def close(self) -> None:
        node = getattr(self, 'node', None)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
