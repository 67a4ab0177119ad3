"""mono_depth_node: metric depth and a point cloud from one camera with a monocular network.

Subscribes (sensor-data QoS, reliability by ``input_reliability``) ``image`` and
``camera_info`` (the latest one is cached; it need not be synchronized with the image, but must
describe an image of the same size with valid intrinsics: the network's depth is metric only
with the camera's focal length, so frames are skipped, with a clear report, until a valid
camera_info has arrived).

Publishes with the image's header: ``depth/image`` (32FC1 metres, NaN invalid, or 16UC1 mm),
``depth/camera_info`` (always the depth image's size), ``points`` (organized PointCloud2 in the
camera's optical frame) and ``/diagnostics``. Without a loadable model the node keeps running,
reports the problem and waits for a valid ``model`` parameter.
"""
from __future__ import annotations

import threading
from typing import Any

from sensor_msgs.msg import CameraInfo, Image

from .. import msgs
from ..inference import DepthEstimator
from ..model_card import DEFAULT_MONO, ModelCardError
from .base import DepthNode, FrameError
from .diagnostics import ERROR, OK
from .runtime import guarded, run_node


class MonoDepthNode(DepthNode):
    """One image (+ camera_info) in; depth, camera_info and points out."""

    RELOAD_EXTRA = ('input_size',)
    INPUT_PAIRS = (('image', 'camera_info'),)
    KIND = 'mono'
    MODEL_HELP = '. Required: without a loadable model no depth is published.'

    def __init__(self, **kwargs: Any) -> None:
        self._inputs: list[Any] = []
        self._info: CameraInfo | None = None
        self._info_lock = threading.Lock()
        super().__init__('mono_depth_node', default_model=DEFAULT_MONO, max_depth=20.0, **kwargs)

    def declare_specific(self) -> None:
        self.params.declare('input_size', [0, 0], 'Network input [height, width] in px (each 16-4096); '
                            "[0, 0]: the model card's size.")

    # --- estimator -------------------------------------------------------------------------
    def load(self, values: dict[str, Any]) -> DepthEstimator:
        if not values['model']:
            raise ModelCardError('no model given: set the model parameter (a shipped model name or a card path)')
        size = tuple(values['input_size'])
        return DepthEstimator(values['model'], backend=values['backend'], providers=values['providers'],
                              threads=values['threads'], input_size=None if size == (0, 0) else size)

    def load_failed(self, error: Exception) -> None:
        message = (f'model {self.params.get("model")!r} could not be loaded ({error}); no depth is published '
                   'until the model parameter names a loadable model')
        self.errors.report('model', message, ERROR)
        self.set_estimator(None, condition=(ERROR, message))

    def validate_specific(self, changes: dict[str, Any], values: dict[str, Any]) -> str | None:
        size = list(values['input_size'])
        if size != [0, 0] and (len(size) != 2 or not all(16 <= s <= 4096 for s in size)):
            return f'input_size must be [0, 0] or [height, width] with each in 16-4096; got {size}'
        return None

    # --- inputs ----------------------------------------------------------------------------
    def subscribe(self) -> None:
        qos = self.input_qos
        self._inputs = [self.create_subscription(CameraInfo, 'camera_info', guarded(self, self._on_info), qos),
                        self.create_subscription(Image, 'image', guarded(self, self._on_image), qos)]

    def unsubscribe(self) -> None:
        for s in self._inputs:
            self.destroy_subscription(s)
        self._inputs = []

    def _on_info(self, info: CameraInfo) -> None:
        if self.accept('camera_info', info):
            with self._info_lock:
                self._info = info

    def _on_image(self, image: Image) -> None:
        if self.accept('image', image):
            self.on_input(image)

    def process(self, frame: tuple[Any, ...]) -> int:
        (image,) = frame
        with self._info_lock:
            info = self._info
        if info is None:
            raise FrameError('camera_info', f'waiting for camera_info on {self.resolve_topic_name("camera_info")}: '
                             'depth is metric only with the focal length; frames are skipped until one arrives',
                             OK)  # a wait, not an error
        rgb = self.rgb_input(image, 'image')
        h, w = rgb.shape[:2]
        self.check_input(lambda: msgs.check_info_matches(info, w, h), 'info_size', 'camera_info')
        k = self.check_input(lambda: msgs.camera_matrix(info), 'intrinsics', 'camera_info')
        depth = self.outputs.clip(self.estimate(rgb, fx=float(k[0, 0]), out_size=(w, h)))
        return self.outputs.publish(depth, rgb, info, k, image.header, self.lazy.lazy)


def main(args: list[str] | None = None) -> None:
    """Console entry point ``mono_depth_node``."""
    run_node(MonoDepthNode, args)


if __name__ == '__main__':
    main()
