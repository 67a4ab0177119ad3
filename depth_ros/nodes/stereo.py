"""stereo_depth_node: disparity, depth and a point cloud from a rectified stereo pair.

By default the shipped AnyNet (``anynet_lite``, all four stages) with OpenCV SGBM beside it
(``fusion`` 'sgbm', both views matched at half size: ``fusion_scale``): SGBM's disparity where it
is confident, the network's elsewhere (see :mod:`depth_ros.inference.fusion`); ``fusion`` 'none'
runs the network alone, ``model`` 'opencv_sgbm' / 'opencv_bm' the OpenCV matchers alone.

Subscribes (sensor-data QoS, best effort or reliable by ``input_reliability``; synchronized
exactly, or within ``slop`` s with ``approximate_sync``): ``left/image_rect``,
``left/camera_info``, ``right/image_rect``, ``right/camera_info`` (the right P[3] = -fx * B
gives the baseline).

Publishes, every message with the left image's header (stamp and frame_id):

- ``disparity`` (stereo_msgs/DisparityImage, full input resolution): f (px), T = B (m), the
  searched range min/max_disparity, delta_d and valid_window (bounding box of valid pixels).
  Invalid pixels hold ``min_disparity - 1``: the message defines values below min_disparity as
  invalid, as stereo_image_proc's disparity and point_cloud nodes do;
- ``depth/image``: 32FC1 metres with NaN where invalid or outside [min_depth, max_depth] (REP
  118; never 0), or 16UC1 millimetres with 0 invalid (``depth_format``), at the input
  resolution divided by ``decimation``;
- ``depth/camera_info``: the left camera_info for exactly that resolution;
- ``points``: organized PointCloud2 (xyz, + 'rgb' from the left image with ``points_rgb``) in
  the left optical frame, NaN where the depth is invalid;
- ``confidence``: 32FC1 in [0, 1], same size and header as depth/image: how much each pixel's
  disparity can be trusted (AnyNet: agreement of its first and last stage run; OpenCV: left-right
  consistency while this topic has subscribers; with ``fusion`` 'sgbm', SGBM's left-right
  consistency where its disparity was taken). Pixels below ``confidence_threshold`` are
  invalid in every output; a pair without stereo information (covered lens, dead camera, blank
  or unrelated views) scores 0 everywhere and is reported as a WARN;
- ``/diagnostics``: rates, latency, node overhead, drops, errors, model and backend, and for
  anytime networks the share of frames each stage answered (``latency_budget_ms``), with
  ``fusion`` the share of frames fused with SGBM (those whose matchings met the budget).

Bad input (encodings, sizes, calibration, unsynchronized stamps) is reported (throttled, in the
log and in /diagnostics) and skipped; a model that fails to load falls back to opencv_sgbm.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from stereo_msgs.msg import DisparityImage

from .. import geometry, msgs
from ..inference import EstimatorError, StereoEstimator, opencv_stereo
from ..inference.fusion import FUSIONS
from ..model_card import DEFAULT_STEREO
from .base import DepthNode, Frame, FrameError
from .diagnostics import ERROR, WARN
from .runtime import run_node
from .sync import Synchronizer

INPUTS = ((Image, 'left/image_rect'), (CameraInfo, 'left/camera_info'),
          (Image, 'right/image_rect'), (CameraInfo, 'right/camera_info'))
OPENCV = ('opencv_sgbm', 'opencv_bm')
FALLBACK = 'opencv_sgbm'
# stereo_image_proc's parameter names (under 'sgbm.'); ranges and modes come from the OpenCV backend
SGBM_HELP: dict[str, str] = {
    'correlation_window_size': 'Matching window (px, odd); SGBM 3-11 is usual, BM at least 5.',
    'min_disparity': 'First disparity searched (px).',
    'disparity_range': 'Number of disparities searched (px, multiple of 16).',
    'uniqueness_ratio': 'Margin (%) by which the best match must beat the second best.',
    'texture_threshold': '(BM) minimum texture in the window.',
    'speckle_size': 'Remove disparity speckles smaller than this (px; 0: off).',
    'speckle_range': 'Max disparity variation within a speckle (px).',
    'disp12_max_diff': 'Max left-right consistency difference (px; -1: off).',
    'P1': '(SGBM) penalty for disparity changes of 1 px (0: 8*channels*window^2).',
    'P2': '(SGBM) penalty for larger disparity changes (0: 32*channels*window^2).',
    'prefilter_cap': 'Clip of the prefiltered image.',
    'prefilter_size': '(BM) prefilter window (px, odd).',
    'sgbm_mode': "(SGBM) 'sgbm_3way' (fastest), 'sgbm' (5 paths), 'hh' (full DP), 'hh4'.",
}


class StereoDepthNode(DepthNode):
    """Rectified stereo pair in; disparity, depth, camera_info and points out."""

    RELOAD_EXTRA = ('input_scale', 'fusion', 'fusion_scale', 'spn_limit')
    INPUT_PAIRS = (('left/image_rect', 'left/camera_info'), ('right/image_rect', 'right/camera_info'))
    KIND, BUILTIN_MODELS = 'stereo', OPENCV
    MODEL_HELP = (", or 'opencv_sgbm' / 'opencv_bm' (OpenCV, tuned by the sgbm.* parameters). A model "
                  'that fails to load falls back to opencv_sgbm.')

    def __init__(self, **kwargs: Any) -> None:
        self._sync: Synchronizer | None = None
        self._received = 0.0  # time.monotonic() of the frame being processed
        self._after_estimate = 0.005  # s, smoothed time from the estimator's answer to the last publish
        self._stage_counts: dict[int, int] = {}
        self._fused_counts = [0, 0]  # frames answered without / with SGBM fusion (fusion 'sgbm')
        super().__init__('stereo_depth_node', default_model=DEFAULT_STEREO, max_depth=20.0, **kwargs)

    def declare_specific(self) -> None:
        p = self.params
        p.declare('stages', 0, 'Stages of an anytime network (AnyNet: 1-3, 4 = with SPN refinement) to run; '
                  '0: all. Fewer is faster and coarser. Ignored by models with one stage (opencv_*).', range=(0, 4))
        p.declare('latency_budget_ms', 0.0, "Anytime networks: per frame, run stages while the next one's "
                  "measured duration still fits in this budget (ms, from the input's receipt, leaving time "
                  'to publish) and publish the best finished one (stage 1 always runs; /diagnostics gives '
                  "the share of frames each stage answered). With fusion, SGBM's matchings are used only "
                  "when they end within it too (not waited for; /diagnostics gives the share of fused "
                  "frames). 0: off, 'stages' decides.", range=(0.0, 10000.0))
        p.declare('confidence_threshold', 0.01, 'Pixels whose confidence (topic confidence, 0..1) is below '
                  'this are invalid in disparity, depth and points (AnyNet: 0.01 drops stages that moved by '
                  'more than ~9 px; pairs without stereo information score 0). 0: keep every pixel.',
                  range=(0.0, 1.0))
        p.declare('input_scale', 1.0, 'Resize the pair by this factor before matching (0.5: a quarter of the '
                  'pixels to match); outputs stay at the input resolution.', range=(0.1, 2.0))
        p.declare('fusion', 'sgbm', "'sgbm' (default): run OpenCV SGBM (the sgbm.* parameters; "
                  "disparity_range should cover the scene) beside the network and publish SGBM's disparity "
                  "where it is left-right consistent within 1.5 px, the network's disparity lies inside "
                  "SGBM's range and SGBM's is within a factor 1.5 of it; the network's elsewhere "
                  "(confidence: SGBM's left-right consistency there). Sharper edges and thin structures, "
                  "fewer gross errors, at about SGBM's own cost (in a worker thread beside the network "
                  "unless threads is 1). 'none': the network alone, about twice as fast. Ignored by "
                  "opencv_* models.",
                  choices=FUSIONS)
        p.declare('fusion_scale', 0.5, "With fusion: SGBM matches the left view at half size (0.5: about a "
                  'third of the cost of 1.0, as accurate on the README\'s checks; disparities upsampled) or at '
                  'full size (1.0). The right view is always matched at half size.', range=(0.5, 1.0), step=0.5)
        p.declare('spn_limit', -1.0, "How far (px of the network's input) AnyNet's SPN stage may move stage 3's "
                  "disparity: a trust region (on real pairs the SPN bleeds background into object borders). "
                  "-1: the model card's value (anynet_lite, anynet_spn8: 0.5); 0: no limit. Ignored by models "
                  'without an SPN.',
                  range=(-1.0, 100.0))
        p.declare('queue_size', 5, 'Input synchronizer queue per topic (messages).', range=(1, 100), read_only=True)
        p.declare('approximate_sync', False, 'Pair inputs whose stamps differ by up to slop instead of '
                  'requiring equal stamps (cameras that are not hardware-synchronized).', read_only=True)
        p.declare('slop', 0.02, 'Largest stamp difference (s) paired with approximate_sync.',
                  range=(0.0, 1.0), read_only=True)
        model = p.get('model')
        defaults = StereoEstimator(model if model in OPENCV else FALLBACK).sgbm_params
        for name, description in SGBM_HELP.items():
            default = float(defaults[name]) if name in opencv_stereo.FRACTIONAL else defaults[name]
            limits = opencv_stereo.RANGES.get(name)  # (low, high, odd, multiple); None: sgbm_mode
            p.declare(f'sgbm.{name}', default, description + ' Used by opencv_sgbm / opencv_bm and by fusion.',
                      range=limits[:2] if limits else None, step=limits[3] if limits and limits[3] > 1 else 0,
                      choices=None if limits else tuple(opencv_stereo.SGBM_MODES))

    def extra_publishers(self, qos: Any) -> None:
        self.disparity_pub = self.create_publisher(DisparityImage, 'disparity', qos)
        self.confidence_pub = self.create_publisher(Image, 'confidence', qos)

    def output_publishers(self) -> list[Any]:
        return super().output_publishers() + [self.disparity_pub, self.confidence_pub]

    # --- estimator -------------------------------------------------------------------------
    @staticmethod
    def _sgbm(values: dict[str, Any]) -> dict[str, Any]:
        return {name: values[f'sgbm.{name}'] for name in SGBM_HELP}

    def load(self, values: dict[str, Any]) -> StereoEstimator:
        model = values['model']
        fusion = 'none' if model in OPENCV else values['fusion']
        est = StereoEstimator(model, backend=values['backend'], providers=values['providers'],
                              threads=values['threads'], input_scale=values['input_scale'], fusion=fusion,
                              fusion_scale=values['fusion_scale'],
                              spn_limit=None if values['spn_limit'] < 0 else values['spn_limit'],
                              sgbm=self._sgbm(values) if model in OPENCV or fusion != 'none' else None)
        stages = values['stages']
        if stages in est.available_stages:
            est.stages = stages
        elif stages:  # a model without these stages (opencv_*: one) runs all it has
            self.get_logger().info(f'model {est.name} runs {est.available_stages} stage(s): stages {stages} is '
                                   'ignored for it')
        return est

    def load_failed(self, error: Exception) -> None:
        model = self.params.get('model')
        message = (f'model {model!r} could not be loaded ({error}); falling back to {FALLBACK}. '
                   'Set the model parameter to a valid model to replace it.')
        try:
            fallback = StereoEstimator(FALLBACK, sgbm=self._sgbm(self.param_values()))
        except ValueError as e:  # the sgbm.* values themselves are invalid
            message += f' The sgbm.* parameters are invalid too ({e}): using OpenCV defaults.'
            fallback = StereoEstimator(FALLBACK)
        self.errors.report('model', message, ERROR)
        self.set_estimator(fallback, condition=(ERROR, message))

    # --- inputs ----------------------------------------------------------------------------
    def subscribe(self) -> None:
        topics = [self.resolve_topic_name(name) for _, name in INPUTS]
        self._sync = Synchronizer(
            self, INPUTS, self.on_input, qos=self.input_qos, queue_size=self.params.get('queue_size'),
            approximate=self.params.get('approximate_sync'), slop=self.params.get('slop'),
            on_unsynchronized=lambda message: self.errors.report('sync', message), on_rejected=self.reject_input,
            on_message=lambda i, msg: self.input_watch.seen(topics[i], msg))

    def unsubscribe(self) -> None:
        if self._sync is not None:
            self._sync.destroy()
            self._sync = None

    def process(self, frame: tuple[Any, ...]) -> int:
        left, left_info, right, right_info = frame
        rgb = self.rgb_input(left, 'left/image_rect')
        rgb_right = self.rgb_input(right, 'right/image_rect')
        h, w = rgb.shape[:2]
        if rgb_right.shape != rgb.shape:
            raise FrameError('size', f'left image {self.resolve_topic_name("left/image_rect")} is {w}x{h} but '
                             f'right image {self.resolve_topic_name("right/image_rect")} is '
                             f'{rgb_right.shape[1]}x{rgb_right.shape[0]}: a rectified pair has one size; frame skipped')
        self.check_input(lambda: msgs.check_info_matches(left_info, w, h), 'info_size', 'left/camera_info')
        self.check_input(lambda: msgs.check_info_matches(right_info, w, h), 'info_size', 'right/camera_info')
        k = self.check_input(lambda: msgs.camera_matrix(left_info), 'intrinsics', 'left/camera_info')
        baseline = self.check_input(lambda: geometry.baseline_from_projection(right_info.p), 'baseline',
                                    'right/camera_info')
        if baseline < 0:
            raise FrameError('baseline', f'{self.resolve_topic_name("right/camera_info")}: P[3] = {right_info.p[3]} '
                             f'gives a negative baseline ({baseline:.4f} m): are left and right swapped? '
                             'frame skipped')
        budget = self.params.get('latency_budget_ms')
        deadline = self._received + budget / 1e3 - self._after_estimate if budget else None
        disparity = self.estimate(rgb, rgb_right, deadline=deadline)
        t_answer = time.perf_counter()
        sent = self._confidence(disparity, left.header)
        if self.outputs.wanted(self.disparity_pub, self.lazy.lazy):
            est = self.estimator
            msg = msgs.disparity_image(disparity, left.header, k[0, 0], baseline, est.min_disparity,
                                       est.max_disparity, est.delta_d, invalid=est.min_disparity - 1.0)
            sent += self.outputs.publish_message(self.disparity_pub, msg)
        depth = self.outputs.depth_from_disparity(disparity, k[0, 0], baseline)
        sent += self.outputs.publish(depth, rgb, left_info, k, left.header, self.lazy.lazy)
        took = time.perf_counter() - t_answer
        self._after_estimate += 0.2 * (took - self._after_estimate)
        return sent

    def _run(self, frame: Frame) -> None:
        self._received = frame.received
        super()._run(frame)

    def _confidence(self, disparity: np.ndarray, header: Any) -> int:
        """Confidence of this frame's disparity (timed as estimation): masks ``disparity`` in
        place below confidence_threshold, reports a pair without stereo information, publishes
        the map when wanted, counts the stage that answered. Returns the messages published."""
        est, t0 = self.estimator, time.perf_counter()
        wanted = self.outputs.wanted(self.confidence_pub, self.lazy.lazy)
        try:
            conf = est.confidence(left_right=wanted)  # OpenCV's left-right check costs a second matching
        except EstimatorError as e:  # the model was swapped (parameter change) after this frame's estimate
            raise FrameError('model', f'model changed during the frame ({e}); frame skipped') from e
        threshold = self.params.get('confidence_threshold')
        if threshold > 0:
            np.copyto(disparity, np.float32(np.nan), where=conf < threshold)
        self._estimator_time += time.perf_counter() - t0
        if est.warning:
            dropped = 'no valid depth published' if threshold > 0 else 'depth still published (confidence_threshold 0)'
            self.errors.report('no_information', f'stereo pair without depth information: {est.warning}; '
                               f'confidence 0, {dropped}', WARN)
        if est.backend != 'opencv':
            stage = est.last_stage
            self._stage_counts[stage] = self._stage_counts.get(stage, 0) + 1
            total = sum(self._stage_counts.values())
            self.diagnostics.info['stage answered (share of frames)'] = ', '.join(
                f'{k}: {100 * n / total:.0f} %' for k, n in sorted(self._stage_counts.items()))
            self.diagnostics.info['stage answered (last frame)'] = str(stage)
        if est.fusion != 'none':
            counts = self._fused_counts
            counts[est.fused] += 1
            self.diagnostics.info['fused with SGBM (share of frames)'] = f'{100 * counts[1] / sum(counts):.0f} %'
            self.diagnostics.info['fused with SGBM (last frame)'] = 'yes' if est.fused else 'no'
        if not wanted:
            return 0
        step = self.settings.decimation
        conf = np.ascontiguousarray(geometry.decimate(conf, step)) if step > 1 else conf
        return self.outputs.publish_message(self.confidence_pub, msgs.array_to_image(conf, '32FC1', header))

    # --- parameters ------------------------------------------------------------------------
    def validate_specific(self, changes: dict[str, Any], values: dict[str, Any]) -> str | None:
        sgbm = {k[5:]: v for k, v in changes.items() if k.startswith('sgbm.')}
        if sgbm:
            method = values['model'] if values['model'] in OPENCV else FALLBACK
            try:
                StereoEstimator(method, sgbm=self._sgbm(values))
            except ValueError as e:
                return str(e)
        stages, available = changes.get('stages'), self.estimator.available_stages
        if stages and 'model' not in changes and len(available) > 1 and stages not in available:
            return (f'model {self.estimator.name} runs {self.estimator.available_stages} stage(s), '
                    f'not {stages}')
        return None

    def apply_specific(self, changes: dict[str, Any]) -> None:
        if changes.keys() & {'model', 'backend'}:
            self._stage_counts = {}  # another network: its stage shares start again (new dict: the worker may count)
        if changes.keys() & {'model', 'backend', 'fusion'}:
            self._fused_counts = [0, 0]
            for key in ('fused with SGBM (share of frames)', 'fused with SGBM (last frame)'):
                self.diagnostics.info.pop(key, None)
        sgbm = {k[5:]: v for k, v in changes.items() if k.startswith('sgbm.')}
        with self._estimator_lock:
            est = self.estimator
            if sgbm and (est.name in OPENCV or est.fusion != 'none'):
                est.set_sgbm(**sgbm)
            if 'stages' in changes and len(est.available_stages) > 1:  # one stage: stages is ignored
                est.stages = changes['stages'] or max(est.available_stages)


def main(args: list[str] | None = None) -> None:
    """Console entry point ``stereo_depth_node``."""
    run_node(StereoDepthNode, args)


if __name__ == '__main__':
    main()
