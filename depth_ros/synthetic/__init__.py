"""Synthetic stereo scenes with exact depth, disparity and occlusion (ray casting, no torch import).

One implementation of the geometry serves the ROS demo camera (numpy, single frames) and
training (torch tensors, whole batches on the GPU): every function below ``render_stereo``
takes numpy arrays or torch tensors alike (see ``xp.py``).

numpy API::

    scene = random_scene(seed=3)
    camera = StereoCamera(width=640, height=480, fx=500, fy=500, cx=319.5, cy=239.5, baseline=0.12)
    frame = render_stereo(scene, camera, pose=pose_matrix(x=0.1, yaw=0.05))
    frame['left'], frame['right']          # (H, W, 3) uint8 RGB
    frame['depth'], frame['disparity']     # (H, W) float32, m and px (left view)
    frame['occlusion']                     # (H, W) bool, left pixels hidden from the right camera

Batches (numpy, or torch after uploading the arrays), the one front end of training data::

    scene, view = sample_views(rng, n, height, width, hfov_deg=(15, 100), photos=PhotoBank.load(), content='rich')
    out = render_pair(scene, baseline=nearest_baseline(share, view['fx'], 192.0), **view)

Photographs on surfaces: ``depth-ros-render textures`` collects the bank (``textures.py``).
Imperfect cameras (noise, blur, vignetting, exposure, tone, JPEG, rectification error) on rendered
images, ground truth kept: ``CameraArtifacts()(sample, rng)`` (``camera.py``).

Known scenes for tests: ``make_scene([plane(...), box(...), sphere(...)])``.
"""
from ..geometry import warp_right_to_left  # its home is depth_ros.geometry (re-exported for the tests' pairs)
from .camera import CameraArtifacts
from .render import StereoCamera, occlusion_mask, pose_matrix, render_pair, render_stereo, render_view
from .sampler import nearest_baseline, random_scene, sample_cameras, sample_scenes, sample_views
from .scene import (TEXTURE_PARAMS, Primitive, Scene, box, ellipsoid, make_scene, plane, rectangle,
                    sample_textures, sphere)
from .textures import PhotoBank

__all__ = ['CameraArtifacts', 'PhotoBank', 'TEXTURE_PARAMS', 'Primitive', 'Scene', 'StereoCamera', 'box',
           'ellipsoid', 'make_scene', 'nearest_baseline', 'occlusion_mask', 'plane', 'pose_matrix', 'random_scene',
           'rectangle', 'render_pair', 'render_stereo', 'render_view', 'sample_cameras', 'sample_scenes',
           'sample_textures', 'sample_views', 'sphere', 'warp_right_to_left']
