"""``DepthNode``: what the stereo and mono depth nodes share.

Parameters (model, backend, providers, threads, outputs, max_input_pixels, lazy, output and input
QoS; declared in one place, ``_declare_parameters``) with run-time validation, estimator loading
(a failure is logged, shown in /diagnostics and handed to the subclass, which may fall back),
lazy input subscription, input checks (stamps, size limit) and the DDS watch, the newest-only
worker thread that runs the estimator and publishes, throttled problem reports and the
node-overhead timer (everything except the estimator call, reported in /diagnostics)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np
from rclpy.node import Node

from ..inference import EstimatorError
from ..model_card import ModelCardError, shipped_cards
from ..msgs import image_to_rgb8
from .diagnostics import ERROR, WARN, Diagnostics, ErrorReporter
from .inputs import InputWatch, LazySubscriptions
from .outputs import DepthOutputs
from .params import ParameterSet, declare_input_qos, declare_qos
from .runtime import forward_python_logging
from .sync import stamp_problem
from .worker import NewestOnlyWorker

RELOAD = ('model', 'backend', 'providers', 'threads')  # + the subclass's RELOAD_EXTRA
MAX_INPUT_PIXELS = 4096 * 2160  # default of max_input_pixels: 4K UHD
LOAD_ERRORS = (ModelCardError, EstimatorError, ValueError, OSError, ImportError, RuntimeError)


class FrameError(Exception):
    """A frame that cannot be used; ``message`` names the cause and the topic. ``level`` OK is a
    wait (e.g. for camera_info), not an error: logged at INFO and not counted."""

    def __init__(self, cause: str, message: str, level: int = WARN) -> None:
        super().__init__(message)
        self.cause, self.message, self.level = cause, message, level


@dataclass
class Frame:
    """Input messages of one frame and when they arrived (time.monotonic(), s)."""
    received: float
    msgs: tuple[Any, ...]


class DepthNode(Node):
    """Base of the depth nodes. Subclasses set RELOAD_EXTRA and implement ``declare_specific``,
    ``load(values)``, ``load_failed(error)``, ``subscribe``, ``unsubscribe``, ``process(msgs)``,
    and may extend ``extra_publishers``, ``validate_specific`` and ``apply_specific``."""

    RELOAD_EXTRA: tuple[str, ...] = ()  # parameters besides RELOAD whose change reloads the model
    INPUT_PAIRS: tuple[tuple[str, str], ...] = ()  # (image, camera_info) topics watched by InputWatch
    KIND = ''  # 'mono' | 'stereo': the model cards this node runs
    BUILTIN_MODELS: tuple[str, ...] = ()  # models without a card (opencv_*)
    MODEL_HELP = '.'  # end of the model parameter's description

    def __init__(self, name: str, *, default_model: str, max_depth: float, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        forward_python_logging()
        self.params = ParameterSet(self)
        self.errors = ErrorReporter(self)
        qos = self._declare_parameters(default_model, max_depth)
        self.outputs = DepthOutputs(self, qos, self.errors, self.settings)
        self.extra_publishers(qos)
        self.diagnostics = Diagnostics(self, self.errors, 'depth')
        self.input_watch = InputWatch(self, self.INPUT_PAIRS, self.errors)
        self._estimator_lock = threading.Lock()
        self._estimator_time = 0.0
        self._pending: Any = None
        self.estimator: Any = None
        try:
            self.set_estimator(self._load(self.param_values()))
        except LOAD_ERRORS as e:
            self.load_failed(e)
        self.worker: NewestOnlyWorker[Frame] = NewestOnlyWorker(self._run, self._crashed, name=f'{name}_worker')
        self.diagnostics.dropped = lambda: self.worker.dropped
        self.lazy = LazySubscriptions(self, self.output_publishers, self._subscribe, self._unsubscribe,
                                      lazy=self.lazy_enabled)
        self.params.on_change(self._validate, self._apply)

    def _declare_parameters(self, default_model: str, max_depth: float) -> Any:
        """Every parameter of the node, in one place (the subclass's own in ``declare_specific``,
        the outputs' in ``DepthOutputs.declare``); returns the publishers' QoS profile."""
        p = self.params
        p.declare('model', default_model, "Model: a shipped model's name (models/<name>.json), a "
                  'model card (.json) or .onnx path' + self.MODEL_HELP)
        p.declare('backend', 'auto', "Inference backend: 'auto' (onnxruntime for model cards, torch "
                  "for .pt checkpoints, OpenCV for opencv_*), 'onnxruntime', 'torch' or 'opencv'.",
                  choices=('auto', 'onnxruntime', 'torch', 'opencv'))
        p.declare('providers', 'cpu', "ONNX Runtime execution providers, comma-separated: 'cpu', "
                  "'cuda', 'tensorrt' (engines cached in ~/.cache/depth_ros/tensorrt) or full provider names; "
                  'unavailable ones fall back to CPU.')
        p.declare('threads', 0, "Inference threads: ONNX Runtime's intra-op threads, or OpenCV's / "
                  "torch's process-wide count (0: the library's default).", range=(0, 256))
        self.declare_specific()
        self.settings = DepthOutputs.declare(p, max_depth)
        p.declare('max_input_pixels', MAX_INPUT_PIXELS, 'Largest input image (width x height, px) processed; '
                  'larger ones are skipped with a warning (a 4096x4096 pair takes GBs of memory).',
                  range=(1, 2**31 - 1))
        self.lazy_enabled = p.declare(
            'lazy', True, 'Subscribe to the inputs and compute only while some output has a subscriber '
            '(checked every 0.5 s); false: always.')
        qos = declare_qos(p)
        self.input_qos = declare_input_qos(p)
        return qos

    # --- hooks -------------------------------------------------------------------------------
    def declare_specific(self) -> None:
        """Declare the subclass's own parameters."""

    def extra_publishers(self, qos: Any) -> None:
        """Create publishers beyond depth/image, depth/camera_info and points."""

    def output_publishers(self) -> list[Any]:
        """Publishers whose subscribers keep the inputs subscribed (lazy mode)."""
        return self.outputs.publishers()

    def load(self, values: dict[str, Any]) -> Any:
        """Build the estimator from parameter values (raises one of LOAD_ERRORS)."""
        raise NotImplementedError

    def load_failed(self, error: Exception) -> None:
        """The estimator named by the parameters could not be loaded at start-up or at run time."""
        raise NotImplementedError

    def subscribe(self) -> None:
        raise NotImplementedError

    def unsubscribe(self) -> None:
        raise NotImplementedError

    def process(self, msgs: tuple[Any, ...]) -> int:
        """Compute and publish one frame; return the number of messages published. Raise
        FrameError for unusable input."""
        raise NotImplementedError

    def validate_specific(self, changes: dict[str, Any], values: dict[str, Any]) -> str | None:
        """Reason the subclass rejects ``changes`` (``values``: all parameters after them)."""
        return None

    def apply_specific(self, changes: dict[str, Any]) -> None:
        """Apply accepted changes of the subclass's own parameters."""

    # --- estimator ---------------------------------------------------------------------------
    def _load(self, values: dict[str, Any]) -> Any:
        """``load``, with a 'no model named' error listing only the models of this node's kind."""
        try:
            return self.load(values)
        except ModelCardError as e:
            if not str(e).startswith('no model named'):
                raise
        names = [c.name for c in shipped_cards(self.KIND, trained=False)] + list(self.BUILTIN_MODELS)
        raise ModelCardError(f'no {self.KIND} model named {values["model"]!r}; shipped {self.KIND} models: '
                             f'{", ".join(names) or "none"}')

    def param_values(self) -> dict[str, Any]:
        """Current values of every declared parameter."""
        return {name: self.params.get(name) for name in self.params.specs}

    def set_estimator(self, estimator: Any, condition: tuple[int, str] | None = None) -> None:
        """Use ``estimator`` from the next frame on; ``condition`` (level, message) is shown in
        /diagnostics while it runs (e.g. a fallback). Untrained weights are warned about loudly."""
        with self._estimator_lock:
            self.estimator = estimator
        if estimator is None:
            self.diagnostics.info.update(model='none', backend='none', providers='', trained='False')
        else:
            self.diagnostics.info.update(model=str(estimator.name), backend=str(estimator.backend),
                                         providers=', '.join(estimator.providers),
                                         trained=str(bool(estimator.trained)))
            self.get_logger().info(f'model {estimator.name} ({estimator.backend}) loaded')
            if not estimator.trained and not estimator.name.startswith('opencv'):
                condition = condition or (WARN, f'model {estimator.name} is UNTRAINED (for tests only)')
                self.get_logger().warning(
                    f'\n{"!" * 72}\n  model {estimator.name} is UNTRAINED: its depth is meaningless. '
                    f'Such weights are for tests only;\n  use a trained model (see README, "Models").\n{"!" * 72}')
        self.diagnostics.condition = condition

    def estimate(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Call the estimator, timing it (excluded from the node overhead)."""
        with self._estimator_lock:
            est = self.estimator
            if est is None:
                raise FrameError('model', f'no model loaded (model:={self.params.get("model")!r}): '
                                 'set a valid model parameter; frames are skipped', ERROR)
            t0 = time.perf_counter()
            try:
                return est(*args, **kwargs)
            except EstimatorError as e:
                raise FrameError('estimator', f'model {est.name} rejected the input: {e}') from None
            except ModelCardError as e:
                failed = e
            finally:
                self._estimator_time = time.perf_counter() - t0
        self.load_failed(failed)
        raise FrameError('model', f'model {est.name} failed to run: {failed}', ERROR)

    # --- frames ------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        self.subscribe()
        self.input_watch.start()

    def _unsubscribe(self) -> None:
        self.input_watch.stop()
        self.unsubscribe()

    def on_input(self, *msgs: Any) -> None:
        """Synchronized input set: queue it for the worker (newest only)."""
        self.diagnostics.frame_in()
        self.worker.submit(Frame(time.monotonic(), msgs))

    def reject_input(self, message: str) -> None:
        """An input message that never reaches the worker (e.g. a negative stamp)."""
        self.errors.report('stamp', message)

    def accept(self, topic: str, msg: Any) -> bool:
        """Whether an input message may be used (a usable stamp); watched by ``input_watch``."""
        problem = stamp_problem(msg)
        if problem is not None:
            self.reject_input(f'{self.resolve_topic_name(topic)}: {problem}; message dropped')
            return False
        self.input_watch.seen(self.resolve_topic_name(topic), msg)
        return True

    def rgb_input(self, msg: Any, topic: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB of an input image; FrameError naming ``topic`` if it is larger than
        ``max_input_pixels`` (checked before anything is allocated) or cannot be converted."""
        limit = self.params.get('max_input_pixels')
        if int(msg.width) * int(msg.height) > limit:
            raise FrameError('size', f'{self.resolve_topic_name(topic)}: image {msg.width}x{msg.height} has more '
                             f'than max_input_pixels ({limit}) pixels; frame skipped (raise max_input_pixels to '
                             'process it)')
        return self.check_input(lambda: image_to_rgb8(msg), 'encoding', topic)

    def _run(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        self._estimator_time = self.outputs.publish_time = 0.0
        try:
            sent = self.process(frame.msgs)
        except FrameError as e:
            self.errors.report(e.cause, e.message, e.level)
            return
        if sent:
            overhead = time.perf_counter() - t0 - self._estimator_time - self.outputs.publish_time
            self.diagnostics.frame_out(time.monotonic() - frame.received, overhead)

    def _crashed(self, error: Exception) -> None:
        self.errors.report('internal', f'unexpected error while processing a frame: '
                           f'{type(error).__name__}: {error}', ERROR)

    def check_input(self, check: Callable[[], Any], cause: str, topic: str) -> Any:
        """``check()``'s result; its MessageError/ValueError becomes a FrameError naming ``topic``."""
        try:
            return check()
        except ValueError as e:
            raise FrameError(cause, f'{self.resolve_topic_name(topic)}: {e}; frame skipped') from None

    # --- parameters --------------------------------------------------------------------------
    def _validate(self, changes: dict[str, Any]) -> str | None:
        values = {**self.param_values(), **changes}
        reason = DepthOutputs.check(values) or self.validate_specific(changes, values)
        if reason is None and any(k in changes for k in RELOAD + self.RELOAD_EXTRA):
            try:
                self._pending = self._load(values)
            except LOAD_ERRORS as e:
                return f'cannot load model {values["model"]!r}: {e}'
        return reason

    def _apply(self, changes: dict[str, Any]) -> None:
        for name in DepthOutputs.NAMES:
            if name in changes:
                setattr(self.settings, name, changes[name])
        if 'lazy' in changes:
            self.lazy.lazy = changes['lazy']
            self.lazy.check()
        if self._pending is not None:
            self.set_estimator(self._pending)
            self._pending = None
        self.apply_specific(changes)
        self.get_logger().info('parameters changed: ' + ', '.join(f'{k}={v!r}' for k, v in changes.items()))

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()
