"""The stereo node's test rig: one synthetic 640x480 pair with exact depth, and a node (model
opencv_sgbm unless a test's parameters say otherwise) spinning beside a probe that publishes the
inputs and records every output. Import the fixtures into a test module: ``from stereo_rig import
rig_fixture, scene_fixture  # noqa: F401``."""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from depth_ros.nodes.stereo import StereoDepthNode
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo
from ros_harness import Probe, Rig, camera_info, header, image, node_with_probe, overrides

W, H, FX, B = 640, 480, 500.0, 0.12
LEFT, RIGHT = 'camera_left_optical_frame', 'camera_right_optical_frame'
OUTPUTS = {'depth/image': Image, 'depth/camera_info': CameraInfo, 'points': PointCloud2,
           'disparity': DisparityImage}


@pytest.fixture(name='scene', scope='module')
def scene_fixture():
    """One 640x480 synthetic pair with exact depth (seed 1: boxes, spheres, planes, 1.6-8 m)."""
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    return render_stereo(random_scene(seed=1), cam)


class StereoRig(Rig):
    """A stereo node and a probe spinning together; ``send`` publishes one input set."""

    outputs = OUTPUTS

    def __init__(self, node: StereoDepthNode, probe: Probe, scene: dict) -> None:
        super().__init__(node, probe)
        self.scene = scene

    def send(self, *, left=None, right=None, left_info=None, right_info=None, right_offset_ns=0,
             left_encoding='rgb8', small=False):
        """Publish left/right image + info with a fresh stamp (the left header is returned).
        ``small``: the pair decimated to 320x240 (cheaper; for robustness tests)."""
        s = 2 if small else 1
        stamp = self.next_stamp()
        hl, hr = header(stamp, LEFT), header(stamp + right_offset_ns, RIGHT)
        left = self.scene['left'][::s, ::s] if left is None else left
        right = self.scene['right'][::s, ::s] if right is None else right
        fx = FX / s
        left_info = left_info or camera_info(W // s, H // s, fx, 0.0, LEFT)
        right_info = right_info or camera_info(W // s, H // s, fx, -fx * B, RIGHT)
        left_info.header, right_info.header = hl, hr
        for topic, msg in (('left/camera_info', left_info), ('right/camera_info', right_info),
                           ('right/image_rect', image(np.ascontiguousarray(right), 'rgb8', hr)),
                           ('left/image_rect', left if isinstance(left, Image) else
                            image(np.ascontiguousarray(left), left_encoding, hl))):
            if isinstance(msg, Image):
                msg.header = hl if topic.startswith('left') else hr
            self.probe.publish(topic, msg)
        return hl


@pytest.fixture(name='rig')
def rig_fixture(ros, scene, request):
    params = {'model': 'opencv_sgbm', **getattr(request, 'param', {})}
    node = StereoDepthNode(parameter_overrides=overrides(**{k: v for k, v in params.items() if v is not None}))
    # confidence is listened to with AnyNet only: a subscriber makes SGBM run its left-right check
    extra = {'confidence': Image} if params['model'] is None else {}
    with node_with_probe(node, {**OUTPUTS, **extra, '/diagnostics': DiagnosticArray}, 'stereo_probe') as probe:
        yield StereoRig(node, probe, scene)
