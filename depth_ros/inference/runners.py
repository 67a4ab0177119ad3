"""Network runners: one interface, ``run(inputs) -> output``, for ONNX Runtime (and torch).

Execution providers are named 'cpu', 'cuda', 'tensorrt' (or 'openvino', 'coreml', 'dml') or by
their full ONNX Runtime names; unavailable ones are dropped with a warning on the 'depth_ros'
logger, and the CPU provider is always the last fallback. TensorRT keeps its engines and timing
cache in ``TRT_CACHE`` (``~/.cache/depth_ros/tensorrt``, or ``$DEPTH_ROS_TRT_CACHE``): building
them takes minutes, loading them seconds.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from ..model_card import ModelCardError
from .images import EstimatorError

log = logging.getLogger('depth_ros')

CPU = 'CPUExecutionProvider'
ALIASES = {'cpu': CPU, 'cuda': 'CUDAExecutionProvider', 'tensorrt': 'TensorrtExecutionProvider',
           'openvino': 'OpenVINOExecutionProvider', 'coreml': 'CoreMLExecutionProvider',
           'dml': 'DmlExecutionProvider'}


TRT_CACHE = Path(os.environ.get('DEPTH_ROS_TRT_CACHE', Path.home() / '.cache' / 'depth_ros' / 'tensorrt'))


class Runner(Protocol):
    """Runs one network graph: named float32 NCHW inputs -> its (first) output."""
    providers: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        ...


def available_providers() -> list[str]:
    """ONNX Runtime execution providers usable on this machine (full names, preferred first)."""
    return list(ort.get_available_providers())


def requested_providers(providers: str | Sequence[str]) -> list[str]:
    """Full provider names asked for: a name, a comma-separated string or a list of names."""
    names = providers.split(',') if isinstance(providers, str) else list(providers)
    full = []
    for name in names:
        name = str(name).strip()
        name = ALIASES.get(name.lower(), name)
        if not name.endswith('ExecutionProvider'):
            raise EstimatorError(f'unknown execution provider {name!r}; accepted: {", ".join(ALIASES)} or full '
                                 f'ONNX Runtime names (available here: {", ".join(available_providers())})')
        if name not in full:
            full.append(name)
    return full


def resolve_providers(providers: str | Sequence[str]) -> list[str]:
    """The available providers among those requested, in order, with CPU appended as the fallback.

    TensorRT alone gets CUDA added after it (when available) for the nodes TensorRT cannot run.
    """
    available = available_providers()
    wanted = requested_providers(providers)
    if wanted == [ALIASES['tensorrt']]:
        wanted.append(ALIASES['cuda'])
    missing = [p for p in wanted if p not in available]
    if missing:
        log.warning('ONNX Runtime execution provider(s) %s not available here (available: %s); using %s',
                    ', '.join(missing), ', '.join(available), 'the others' if len(missing) < len(wanted) else 'CPU')
    used = [p for p in wanted if p in available]
    return used + ([CPU] if CPU not in used else [])


def provider_options(providers: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """``providers`` (full names) with their session options: TensorRT caches its engines and
    timing in ``TRT_CACHE`` (created here); the others keep ONNX Runtime's defaults."""
    out = []
    for name in providers:
        options: dict[str, str] = {}
        if name == ALIASES['tensorrt']:
            TRT_CACHE.mkdir(parents=True, exist_ok=True)
            options = {'trt_engine_cache_enable': 'True', 'trt_engine_cache_path': str(TRT_CACHE),
                       'trt_timing_cache_enable': 'True', 'trt_timing_cache_path': str(TRT_CACHE)}
        out.append((name, options))
    return out


SHRINK_ARENA = ort.RunOptions()  # run options that release the CPU arena's unused memory after the run
SHRINK_ARENA.add_run_config_entry('memory.enable_memory_arena_shrinkage', 'cpu:0')


class OrtRunner:
    """An ONNX Runtime session on one graph file. ``providers`` are those the session really uses;
    ``disabled_optimizers`` names ONNX Runtime graph transformers to skip (the model card's
    ``input.ort_disabled_optimizers``: e.g. 'NchwcTransformer', whose 8/16-channel blocking slows
    1-4 channel convolutions down; AnyNet's step graphs avoid it by other means, see
    :func:`depth_ros.nets.anynet_rewrites.outside_nchwc`)."""

    def __init__(self, path: str | Path, providers: Sequence[str], threads: int = 0,
                 input_names: Sequence[str] = (), disabled_optimizers: Sequence[str] = ()) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # idle worker threads sleep instead of spinning: a node shares the CPU with the rest of the robot
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.log_severity_level = 3  # errors only: ORT's warnings are about graph internals
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=provider_options(providers),
                                                disabled_optimizers=list(disabled_optimizers) or None)
        except Exception as e:  # ORT raises its own exception types for unreadable/invalid graphs
            raise ModelCardError(f'ONNX Runtime cannot load {path}: {e}') from e
        self.providers = self.session.get_providers()
        dropped = [p for p in providers if p not in self.providers]
        if dropped:
            log.warning('ONNX Runtime could not start %s for %s; running on %s', ', '.join(dropped), path,
                        ', '.join(self.providers))
        names = [i.name for i in self.session.get_inputs()]
        if input_names and sorted(names) != sorted(input_names):
            raise ModelCardError(f'graph {path} has inputs {names}, expected {list(input_names)}')
        self.input_names = names
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_name = self.output_names[0]
        self._peak = 0  # largest input (elements) run since the arena last shrank

    def _options(self, inputs: dict[str, np.ndarray]) -> ort.RunOptions | None:
        """ONNX Runtime's CPU arena keeps the memory of the largest input ever run (GBs after one
        4096x4096 pair): the first run on smaller inputs than the largest since the last shrink
        shrinks it afterwards (same-size runs, the usual case, never do)."""
        size = sum(a.size for a in inputs.values())
        shrink = size < self._peak
        self._peak = size if shrink else max(self._peak, size)
        return SHRINK_ARENA if shrink else None

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph; returns its first output."""
        return self.session.run([self.output_name], inputs, self._options(inputs))[0]

    def run_all(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; returns every output by name (for step graphs that hand tensors on)."""
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs, self._options(inputs))))
