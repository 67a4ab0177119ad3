"""DepthEstimator: metric depth from one image by a monocular network (ONNX Runtime or torch)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from pathlib import Path

import numpy as np

from ..geometry import mask_invalid
from ..model_card import ModelCardError
from .images import EstimatorError, TensorMaker, check_image
from .loading import check_backend, load_network
from .opencv_stereo import METHODS
from .sizing import SizeMap, size_map

QUANTITIES = ('depth', 'inverse_depth')


def _check_size(size: Sequence[int], what: str) -> tuple[int, int]:
    """Two positive integers, as a tuple."""
    try:
        a, b = size
        if isinstance(a, bool) or isinstance(b, bool) or int(a) != a or int(b) != b or min(a, b) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise EstimatorError(f'{what} must be two positive integers, got {size!r}') from None
    return int(a), int(b)


class DepthEstimator:
    """Metric depth (m) of an image from a monocular network.

    ``model``: a shipped model name, a card or .onnx path, or a ``.pt`` checkpoint (torch).
    ``input_size`` (H, W): the network input size (default: the card's ``input.size``; dynamic
    graphs take any size, padded to their ``multiple_of``). The network predicts depth for its
    canonical camera (focal ``f_canonical`` px at network resolution); given the camera's ``fx``
    a call converts it: depth = out * f_net / f_canonical, f_net = fx * W_net / W_image.
    """
    kind = 'mono'

    def __init__(self, model: str | Path, *, backend: str = 'auto', providers: str | Sequence[str] = 'cpu',
                 threads: int = 0, input_size: tuple[int, int] | None = None) -> None:
        check_backend(backend)
        if str(model) in METHODS:
            raise EstimatorError(f'{model} is a stereo method: use StereoEstimator')
        loaded = load_network(model, 'mono', backend, providers, threads)
        card = loaded.card
        self._quantity = card.output.get('quantity')
        if self._quantity not in QUANTITIES:
            raise ModelCardError(f'model {card.name!r} outputs {self._quantity!r}; DepthEstimator needs '
                                 f'{" or ".join(QUANTITIES)}')
        fixed = loaded.fixed_size
        if input_size is not None:
            input_size = _check_size(input_size, 'input_size (H, W)')
            if fixed and input_size != fixed:
                raise EstimatorError(f'model {card.name!r} has a fixed input size {fixed[0]}x{fixed[1]} (HxW), '
                                     f'cannot run at {input_size[0]}x{input_size[1]}')
        size = input_size or fixed or card.input.get('size')
        if not size:
            raise ModelCardError(f'model {card.name!r} does not say its input size: pass input_size=(H, W)')
        self.input_size = _check_size(size, 'input size (H, W)')
        # a dynamic graph without an explicit size runs at the card's pixel count in the image's aspect
        self._keep_aspect = input_size is None and not fixed
        self._multiple_of, self._output_scale = loaded.multiple_of, loaded.output_scale
        self.name, self.backend, self.trained = card.name, loaded.backend, card.trained
        self.f_canonical: float | None = float(card.f_canonical) if card.f_canonical else None
        self._tensor = TensorMaker(card.input.get('color', 'rgb'), tuple(card.input.get('range', (0, 1))))
        self._runner = loaded.make_runner(1)
        self.providers: list[str] = self._runner.providers
        self.last_focal_scale: float | None = None

    @property
    def focal_scaling(self) -> bool:
        """True if outputs are converted to the calling camera's metric depth when ``fx`` is given;
        False if the card has no ``f_canonical``: outputs are then the network's canonical depth,
        as are those of calls without ``fx`` (``last_focal_scale`` is None after such a call)."""
        return self.f_canonical is not None

    def network_size(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(H, W) the network runs an (H, W) image at: ``input_size``, or for a dynamic graph
        without an explicit size the card's pixel count with the image's aspect ratio (pixels stay
        square, so one focal length describes both axes; padding brings it to ``multiple_of``)."""
        if not self._keep_aspect:
            return self.input_size
        area, aspect = self.input_size[0] * self.input_size[1], shape[1] / shape[0]
        width = math.sqrt(area * aspect)
        return max(1, round(width / aspect)), max(1, round(width))

    def size_map(self, shape: tuple[int, int], out_size: tuple[int, int] | None = None) -> SizeMap:
        """How an (H, W) image maps to the network and back to ``out_size`` (H', W')."""
        return size_map(tuple(shape), self.network_size(tuple(shape)), multiple_of=self._multiple_of,
                        out_size=out_size, output_scale=self._output_scale)

    def __call__(self, image: np.ndarray, fx: float | None = None,
                 out_size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 RGB (H, W, 3) or grey (H, W) image -> (h, w) float32 depth in m at ``out_size`` =
        (w, h) (default: the image size), NaN where invalid. ``fx``: the camera's focal length in
        px at the image's resolution (None: canonical depth)."""
        image = check_image(image)
        if fx is not None and (isinstance(fx, bool) or not isinstance(fx, Real) or not 0 < fx < np.inf):
            raise EstimatorError(f'fx must be a positive focal length in px, got {fx!r}')
        out_hw = None
        if out_size is not None:
            w, h = _check_size(out_size, 'out_size (w, h)')
            out_hw = (h, w)
        sm = self.size_map(image.shape[:2], out_hw)
        out = self._runner.run({'image': self._tensor(sm.to_network(image))})
        out = np.asarray(out.reshape(out.shape[-2:]), np.float32)
        if self._quantity == 'inverse_depth':
            with np.errstate(divide='ignore', invalid='ignore'):
                out = np.reciprocal(out)
        depth = sm.from_network(mask_invalid(out))
        self.last_focal_scale = None
        if fx is not None and self.f_canonical:
            self.last_focal_scale = float(fx) * sm.scale_x / self.f_canonical
            depth = depth * np.float32(self.last_focal_scale)
        return depth
