"""StereoEstimator: disparity from a rectified stereo pair by a network (ONNX Runtime or torch)
or by OpenCV's SGBM/BM, behind one interface."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..geometry import mask_invalid
from .confidence import matcher_confidence, network_confidence
from .fusion import FUSIONS, SGBMFusion
from .images import EstimatorError, TensorMaker, check_pair, to_grey
from .loading import LoadedModel, check_backend, check_threads, load_network
from .opencv_stereo import DISP_SCALE, METHODS, OpenCVStereo
from .runners import Runner
from .sizing import SizeMap, scaled_size, size_map

log = logging.getLogger('depth_ros')


class _StereoNetwork:
    """A stereo network's graphs, one lazily created and cached runner per stage count.

    With incremental graphs (card ``output.incremental``, see :mod:`depth_ros.nets.anynet_steps`)
    graph k runs only stage k from the tensors graph k - 1 returned, so stages run one after the
    other and a deadline can stop between them; ``step_s`` holds each step's smoothed duration.
    ``spn_limit`` (px at network resolution, card ``output.spn_limit``; 0: none): the SPN stage
    (the last of a network with ``spn_channels``) may move the stage before's disparity by at most
    this much (a trust region: on real pairs the SPN bleeds background into object borders).
    """
    SMOOTHING = 0.2  # weight of the newest duration in step_s
    DECAY = 0.9      # factor on a step's estimate per frame it was left out for a deadline

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        card = loaded.card
        self.fixed_size, self.multiple_of = loaded.fixed_size, loaded.multiple_of
        self.output_scale = loaded.output_scale
        self.tensor = TensorMaker(card.input.get('color', 'rgb'), tuple(card.input.get('range', (0, 1))),
                                  card.input.get('normalize'))
        limit = card.output.get('max_disparity', card.options.get('max_disparity'))
        self.max_disparity = float(limit) if limit else None  # px at network resolution; None: unknown
        self.min_disparity = 0.0
        self.incremental = bool(card.output.get('incremental'))
        self.spn_stage = max(card.stages) if card.options.get('spn_channels') else 0
        self.spn_limit = float(card.output.get('spn_limit') or 0.0)
        self.tensor_pair = self.incremental and 'normalize' in card.input
        self.runners: dict[int, Runner] = {}
        self.step_s: dict[int, float] = {}
        self.last_stage = 0
        self.outputs: list[np.ndarray] = []  # (h, w) disparity of every stage run by the last call

    def runner(self, stages: int) -> Runner:
        if stages not in self.runners:
            self.runners[stages] = self.loaded.make_runner(stages)
        return self.runners[stages]

    def disparity(self, left: np.ndarray, right: np.ndarray, stages: int,
                  deadline: float | None = None) -> np.ndarray:
        """uint8 images at network size -> (h, w) float32 disparity (px at network resolution) of
        the last stage run: ``stages``, or fewer when the next step would end after ``deadline``
        (a time.monotonic() value; incremental graphs only, stage 1 always runs)."""
        if self.tensor_pair:  # step graphs read the normalized pair stacked (no Concat in the graph)
            pair = self.tensor(left, right, slot='pair')
            state = {'pair': pair, 'left_normalized': pair[:1]}
        else:
            state = {'left': self.tensor(left, slot='left'), 'right': self.tensor(right, slot='right')}
        self.outputs = []
        for k in range(1, stages + 1) if self.incremental else [stages]:
            if k > 1 and deadline is not None and time.monotonic() + self.step_s.get(k, 0.0) > deadline:
                self._skipped(k, stages)
                break
            runner = self.runner(k)  # created (once) outside the timing: a session's creation is not a step
            start = time.monotonic()
            if self.incremental:
                state.update(runner.run_all({name: state[name] for name in runner.input_names}))
                state['previous'] = out = self._stage(state, left.shape[:2])
            else:
                out = runner.run(state)
            took = time.monotonic() - start
            before = self.step_s.get(k, took)
            self.step_s[k] = before + self.SMOOTHING * (took - before)
            self.outputs.append(np.asarray(out.reshape(out.shape[-2:]), np.float32))
            self.last_stage = k
        if self.spn_limit and self.last_stage == self.spn_stage > 1:
            self._limit_spn(state)
        return self.outputs[-1]

    def _skipped(self, first: int, stages: int) -> None:
        """Steps ``first``..``stages`` were left out for a deadline: their estimates shrink by ``DECAY``, so
        a step measured once under a load spike (or on its first, slower run) is tried again."""
        for k in range(first, stages + 1):
            if k in self.step_s:
                self.step_s[k] *= self.DECAY

    def _limit_spn(self, state: dict[str, np.ndarray]) -> None:
        """Clip the SPN's output (in place) to the stage before's disparity +- ``spn_limit``; graphs that
        run all stages at once run the stage before again for it."""
        if self.incremental:
            before = self.outputs[-2]
        else:
            out = self.runner(self.spn_stage - 1).run(state)
            before = np.asarray(out.reshape(out.shape[-2:]), np.float32)
        refined = self.outputs[-1]  # before + clip(refined - before), in place (no per-frame allocation)
        np.subtract(refined, before, out=refined)
        np.clip(refined, -self.spn_limit, self.spn_limit, out=refined)
        np.add(refined, before, out=refined)

    @staticmethod
    def _stage(state: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """(1, 1, h, w) full-size disparity of the step just run from its outputs in ``state``: its
        ``coarse`` or ``residual`` (+ the step before's) upsampled bilinearly (half-pixel, as the
        network's Resize; see :mod:`depth_ros.nets.anynet_steps`), or its ``disparity`` (step
        graphs cut before the runtime upsampled)."""
        for key in ('coarse', 'residual'):
            low = state.pop(key, None)
            if low is not None:
                up = cv2.resize(low.reshape(low.shape[-2:]), size[::-1], interpolation=cv2.INTER_LINEAR)
                if key == 'residual':
                    np.add(up, state['previous'].reshape(size), out=up)
                return up.reshape(1, 1, *size)
        return state['disparity']


class StereoEstimator:
    """Disparity (px) of the left image of a rectified pair.

    ``model``: 'opencv_sgbm' / 'opencv_bm' (OpenCV, parameters in ``sgbm``, see
    :mod:`depth_ros.inference.opencv_stereo`), a shipped model name, a card or .onnx path, or a
    ``.pt`` checkpoint (torch backend). ``backend``: 'auto', 'onnxruntime', 'torch' or 'opencv'.
    ``stages``: how many stages of an anytime network to run (default: all; settable later).
    ``providers``: 'cpu', 'cuda', 'tensorrt', full ONNX Runtime names or a list (unavailable ones
    fall back to the CPU with a warning). ``threads``: ONNX Runtime intra-op threads, or torch's or
    OpenCV's process-wide thread count (0: library default). ``input_scale``: images are resized
    by it before matching (e.g. 0.5 to halve the work); ignored by fixed-size graphs, which get
    images resized to their size. ``fusion``: 'sgbm' takes OpenCV SGBM's disparity (parameters in
    ``sgbm``) where SGBM is confident and the network's elsewhere (networks only; see
    :mod:`depth_ros.inference.fusion`); 'none' (default): the network alone. ``fusion_scale``:
    SGBM matches the left view at half size (0.5, default) or at full size (1.0, three times the
    cost, about as accurate). ``spn_limit``: how far (px of the network's input) the SPN stage may
    move stage 3's disparity (None: the card's ``output.spn_limit``; 0: no limit).
    """
    kind = 'stereo'

    def __init__(self, model: str | Path = 'opencv_sgbm', *, backend: str = 'auto', stages: int | None = None,
                 providers: str | Sequence[str] = 'cpu', threads: int = 0, input_scale: float = 1.0,
                 sgbm: dict[str, Any] | None = None, fusion: str = 'none', fusion_scale: float = 0.5,
                 spn_limit: float | None = None) -> None:
        check_backend(backend)
        if fusion not in FUSIONS:
            raise EstimatorError(f'fusion must be one of {", ".join(FUSIONS)}, got {fusion!r}')
        self.fusion = fusion
        self._fusion: SGBMFusion | None = None
        if isinstance(input_scale, bool) or not isinstance(input_scale, Real) or not 0 < input_scale <= 4:
            raise EstimatorError(f'input_scale must be a number in (0, 4], got {input_scale!r}')
        self.input_scale = float(input_scale)
        self._scale_x = self.input_scale  # updated by every call
        self._padded_width: int | None = None
        self._last: tuple[SizeMap, np.ndarray, np.ndarray, np.ndarray] | None = None  # for confidence()
        self.warning = ''  # why the last pair scored confidence 0 ('' when it carried information)
        if str(model) in METHODS:
            if fusion != 'none':
                raise EstimatorError(f'fusion={fusion!r} combines a network with SGBM; {model} is no network')
            if backend not in ('auto', 'opencv'):
                raise EstimatorError(f'{model} runs on the opencv backend, not {backend!r}')
            check_threads(threads)
            if threads:
                cv2.setNumThreads(threads)
            self._opencv: OpenCVStereo | None = OpenCVStereo(str(model), sgbm)
            self._net: _StereoNetwork | None = None
            self.name, self.backend, self.trained = str(model), 'opencv', True
            self.available_stages = [1]
            self.providers: list[str] = []
        else:
            if sgbm and fusion != 'sgbm':
                raise EstimatorError(f'sgbm parameters apply to {" and ".join(METHODS)} (or fusion=\'sgbm\') only, '
                                     f'not {model!r}')
            loaded = load_network(model, 'stereo', backend, providers, threads, builtin=METHODS)
            self._opencv, self._net = None, _StereoNetwork(loaded)
            self.name, self.backend, self.trained = loaded.card.name, loaded.backend, loaded.card.trained
            self.available_stages = loaded.card.stages
            if spn_limit is not None:
                if isinstance(spn_limit, bool) or not isinstance(spn_limit, Real) or not 0 <= spn_limit < 1e3:
                    raise EstimatorError(f'spn_limit must be a number of px >= 0 (0: no limit), got {spn_limit!r}')
                self._net.spn_limit = float(spn_limit)
            if fusion == 'sgbm':
                if threads:
                    cv2.setNumThreads(threads)
                # 1 thread: one after the other
                self._fusion = SGBMFusion(sgbm, concurrent=threads != 1, scale=fusion_scale)
            if loaded.fixed_size and self.input_scale != 1.0:
                log.warning('model %r has fixed-size graphs: input_scale %g is ignored', self.name, self.input_scale)
        self.stages = max(self.available_stages) if stages is None else stages
        if self._net is not None:
            load = range(1, max(self.available_stages) + 1) if self._net.incremental else [self.stages]
            for k in load:  # load the graphs now (every step of an incremental network)
                self.providers = self._net.runner(k).providers

    @property
    def stages(self) -> int:
        """Stages run per call (one of ``available_stages``); switching is cheap once each was used."""
        return self._stages

    @stages.setter
    def stages(self, value: int) -> None:
        if value not in self.available_stages:
            runs = ', '.join(map(str, self.available_stages))
            raise EstimatorError(f'{self.name} runs {runs} stage(s), not {value!r}')
        self._stages = int(value)

    @property
    def min_disparity(self) -> float:
        """Smallest valid disparity (px at input resolution)."""
        low = self._opencv.min_disparity if self._opencv else self._net.min_disparity
        return max(low, 0.0) / self._scale_x

    @property
    def max_disparity(self) -> float:
        """Largest disparity the method can return (px at input resolution); for a network whose
        card gives no limit, the width it ran at (after the first call)."""
        high = self._opencv.max_disparity if self._opencv else self._net.max_disparity
        if high is None:
            high = float(self._padded_width or 0)
        if self._fusion:
            high = max(high, self._fusion.max_disparity)
        return high / self._scale_x

    @property
    def delta_d(self) -> float:
        """Disparity resolution (px at input resolution): OpenCV's 1/16 px fixed point; networks
        output continuous values and report the same 1/16 px."""
        return 1.0 / DISP_SCALE / self._scale_x

    @property
    def sgbm_params(self) -> dict[str, Any]:
        """Current OpenCV parameters (empty for networks without fusion)."""
        matcher = self._opencv or (self._fusion and self._fusion.matcher)
        return dict(matcher.params) if matcher else {}

    def set_sgbm(self, **params: Any) -> None:
        """Change OpenCV matcher parameters at run time (names as in stereo_image_proc)."""
        matcher = self._opencv or (self._fusion and self._fusion.matcher)
        if not matcher:
            raise EstimatorError(f'set_sgbm applies to {" and ".join(METHODS)} and fusion; this estimator runs '
                                 f'{self.name} alone')
        matcher.set_params(**params)

    def size_map(self, shape: tuple[int, int]) -> SizeMap:
        """How (H, W) images are mapped to the matcher and back."""
        backend = self._opencv or self._net
        net = backend.fixed_size or scaled_size(shape, self.input_scale)
        return size_map(tuple(shape), net, multiple_of=backend.multiple_of, output_scale=backend.output_scale)

    @property
    def spn_limit(self) -> float:
        """How far (px of the network's input) the SPN stage may move stage 3's disparity (0: no limit,
        or no SPN)."""
        return self._net.spn_limit if self._net and self._net.spn_stage else 0.0

    @property
    def incremental(self) -> bool:
        """True when stages run one after the other (a deadline can stop between them)."""
        return bool(self._net and self._net.incremental)

    @property
    def last_stage(self) -> int:
        """The stage that answered the last call (1 for OpenCV; 0 before any call)."""
        return self._net.last_stage if self._net else 1

    @property
    def fused(self) -> bool:
        """True when the last call's disparity was fused with SGBM's (False without fusion, for
        sizes SGBM cannot match, and when its matchings would not end by the deadline)."""
        return bool(self._fusion and self._fusion.fused)

    @property
    def stage_seconds(self) -> dict[int, float]:
        """Smoothed duration (s) of each stage step (incremental) or graph run so far."""
        return dict(self._net.step_s) if self._net else {}

    def __call__(self, left: np.ndarray, right: np.ndarray, *, deadline: float | None = None) -> np.ndarray:
        """uint8 RGB (H, W, 3) or grey (H, W) rectified pair -> (H, W) float32 disparity in px of
        the input images, NaN where invalid (not positive, or outside the searched range).

        ``deadline`` (time.monotonic() s): an incremental network runs its next stage only while
        that stage's measured duration still ends before it; ``last_stage`` says which answered.
        With fusion, SGBM's matchings are started only when they would end before it even after
        the network's stage 1, and used only when they end before it (``fused``)."""
        left, right = check_pair(left, right)
        sm = self.size_map(left.shape[:2])
        left_net, right_net = sm.to_network(left), sm.to_network(right)
        if self._opencv:
            disparity = self._opencv.disparity(left_net, right_net)
            low, high = self._opencv.min_disparity, self._opencv.max_disparity
        else:
            pending = None
            if self._fusion:  # started under a deadline only if it would end in time after stage 1 too: beside
                # the network both compete for the cores, and a budget asks for the frame rate first
                first = self._net.step_s.get(1, 0.0)
                pending = self._fusion.start(left_net, right_net, None if deadline is None else deadline - first)
            disparity = self._net.disparity(left_net, right_net, self._stages, deadline)
            low, high = self._net.min_disparity, self._net.max_disparity or sm.padded_size[1]
            if self._fusion:  # the network's own range first, then SGBM's values where it is trusted
                disparity = self._fusion.combine(pending, mask_invalid(disparity, low, high), deadline)
                high = max(high, self._fusion.max_disparity)
        self._scale_x, self._padded_width = sm.scale_x, sm.padded_size[1]
        self._last = (sm, left_net, right_net, mask_invalid(disparity, low, high))
        disparity = sm.from_network(disparity)
        if sm.scale_x != 1.0:
            disparity = disparity * np.float32(1.0 / sm.scale_x)
        return disparity

    def confidence(self, left_right: bool = True) -> np.ndarray:
        """(H, W) float32 confidence in [0, 1] of the last call's disparity (0 where invalid): for
        networks the agreement of the first and last stage run, for OpenCV matchers left-right
        consistency; all 0 for a pair that carries no stereo information, ``warning`` then says
        why (see :mod:`depth_ros.inference.confidence`). Costs a few ms; for OpenCV
        ``left_right`` False skips the check's second matching (then 1 where valid)."""
        if self._last is None:
            raise EstimatorError('confidence() describes the last call: call the estimator first')
        sm, left_net, right_net, disparity = self._last
        grey_l, grey_r = to_grey(left_net), to_grey(right_net)
        if self._opencv:
            right = self._opencv.right_disparity(left_net, right_net) if left_right else disparity
            conf, self.warning = matcher_confidence(grey_l, grey_r, disparity, right, left_right)
        else:
            conf, self.warning = network_confidence(grey_l, grey_r, self._net.outputs)
            if self._fusion and not self.warning:
                conf = self._fusion.confidence(conf)
        return sm.from_network(conf)
