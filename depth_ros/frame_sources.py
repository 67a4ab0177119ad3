"""Frame sources of camera_source, without ROS: a synthetic scene rendered along a slow camera
path (with exact ground truth), an image folder (mono, or stereo with left/ and right/
subfolders), a video file; camera_calibration YAML files; the rectified camera the frames are
published with.

Every source has ``camera`` (the rectified :class:`Camera` of its frames), ``stereo`` and
``read() -> Frame | None`` (None: end of the sequence; ``rewind()`` starts it again).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import cv2
import numpy as np
import yaml

from .geometry import baseline_from_projection, scale_projection

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')
DEFAULT_FOV_DEG = 60.0  # horizontal field of view assumed for an uncalibrated camera


class SourceError(ValueError):
    """A source cannot be opened or read: missing path, unreadable files, bad calibration."""


@dataclass
class Frame:
    """One frame: (H, W, 3) uint8 RGB images; for synthetic scenes also (H, W) float32 ground
    truth depth (m) and disparity (px) of the left view, NaN invalid."""
    left: np.ndarray
    right: np.ndarray | None = None
    depth: np.ndarray | None = None
    disparity: np.ndarray | None = None


@dataclass
class Camera:
    """Rectified camera(s) of the frames: ``p`` the 3x4 projection of the left view for images
    of width x height px, ``baseline`` in metres (0 for one camera). The right view has the
    same P except P[0, 3] = -fx * baseline."""
    p: np.ndarray
    width: int
    height: int
    baseline: float = 0.0

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for images resampled to width x height (cv2.resize convention)."""
        p = scale_projection(self.p, width / self.width, height / self.height)
        return Camera(p, width, height, self.baseline)

    def projection(self, right: bool = False) -> np.ndarray:
        """3x4 P of the left view or of the right view (P[0, 3] = -fx * B)."""
        p = self.p.copy()
        p[0, 3] = -p[0, 0] * self.baseline if right else 0.0
        return p


def pinhole(width: int, height: int, fx: float, fy: float | None = None) -> np.ndarray:
    """3x4 projection of an ideal camera (fx, fy px) with the principal point at the centre."""
    fy = fx if fy is None else fy
    return np.array([[fx, 0, (width - 1) / 2, 0], [0, fy, (height - 1) / 2, 0], [0, 0, 1, 0]], np.float64)


def fov_focal(width: int, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length (px) giving a horizontal field of view of ``fov_deg`` over ``width`` px."""
    return 0.5 * width / np.tan(np.radians(fov_deg) / 2)


# ----------------------------------------------------------------------------- calibration
def _matrix(data: dict, key: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    try:
        m = np.asarray(data[key]['data'], np.float64).reshape(shape)
    except (KeyError, TypeError, ValueError):
        raise SourceError(f'calibration {path}: {key} must be a {shape[0]}x{shape[1]} matrix '
                          '({rows, cols, data} as camera_calibration writes it)') from None
    if not np.isfinite(m).all():
        raise SourceError(f'calibration {path}: {key} has non-finite values')
    return m


@dataclass
class Calibration:
    """One camera of a camera_calibration YAML (ost.yaml, left.yaml, right.yaml): K (3x3),
    D (distortion coefficients), R (3x3 rectification), P (3x4), size (width, height) px."""
    k: np.ndarray
    d: np.ndarray
    r: np.ndarray
    p: np.ndarray
    size: tuple[int, int]

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Parse a camera_calibration YAML file; SourceError naming the problem if malformed."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise SourceError(f'cannot read calibration {path}: {e}') from None
        if not isinstance(data, dict) or 'camera_matrix' not in data:
            raise SourceError(f'calibration {path} is not a camera_calibration YAML (no camera_matrix)')
        k = _matrix(data, 'camera_matrix', (3, 3), path)
        d = np.asarray((data.get('distortion_coefficients') or {}).get('data') or [], np.float64)
        r = _matrix(data, 'rectification_matrix', (3, 3), path) if 'rectification_matrix' in data else np.eye(3)
        p = (_matrix(data, 'projection_matrix', (3, 4), path) if 'projection_matrix' in data
             else np.hstack([k, np.zeros((3, 1))]))
        try:
            size = int(data['image_width']), int(data['image_height'])
        except (KeyError, TypeError, ValueError):
            raise SourceError(f'calibration {path} lacks image_width / image_height') from None
        if k[0, 0] <= 0 or k[1, 1] <= 0 or p[0, 0] <= 0 or min(size) <= 0:
            raise SourceError(f'calibration {path} has no valid focal length or image size')
        return cls(k, d, r, p, size)

    @property
    def raw(self) -> bool:
        """True if images of this camera need undistortion or rectification (D or R not trivial)."""
        return bool(np.any(self.d != 0)) or not np.allclose(self.r, np.eye(3))

    def rectifier(self) -> Callable[[np.ndarray], np.ndarray]:
        """Function mapping a raw (h, w, 3) image of this camera onto its rectified P."""
        maps = cv2.initUndistortRectifyMap(self.k, self.d, self.r, self.p[:, :3], self.size, cv2.CV_32FC1)
        return lambda image: cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------- files
def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; SourceError if it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f'cannot read image {path} (missing, unreadable or not an image)')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class FileSource:
    """Frames of an image folder (mono; stereo when it has left/ and right/ subfolders, paired
    in sorted order) or of a video file (mono).

    Calibration: ``calibration`` names a camera_calibration YAML (mono) or a folder with
    left.yaml + right.yaml (stereo); empty = look next to the images (ost.yaml, camera.yaml,
    <video>.yaml; left.yaml + right.yaml). Without one, ``fx`` (px at the file size, > 0) and, for stereo,
    ``baseline`` (m, > 0) describe ideal rectified cameras; a mono source without ``fx``
    assumes a 60 degree horizontal field of view (``assumed_focal`` is then True).
    ``rectify`` undistorts and rectifies raw images with the calibration. Frames are resized
    to ``size`` (width, height) when given (intrinsics scaled); None keeps the file size.
    """

    def __init__(self, kind: str, path: str, *, calibration: str = '', rectify: bool = False,
                 fx: float = 0.0, baseline: float = 0.0, size: tuple[int, int] | None = None) -> None:
        if kind not in ('folder', 'video'):
            raise SourceError(f"file source kind must be 'folder' or 'video', not {kind!r}")
        if not path:
            raise SourceError(f"source '{kind}' needs the path parameter (an image folder or a video file)")
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f'path {self.path} does not exist')
        self.kind = kind
        self.stereo = kind == 'folder' and (self.path / 'left').is_dir() and (self.path / 'right').is_dir()
        self._index = 0
        self._cap: cv2.VideoCapture | None = None
        self._pairs = self._list_folder() if kind == 'folder' else []
        first = self._read_raw()  # checks the files decode, gives the native size
        if first is None:
            raise SourceError(f'video {self.path} has no frames OpenCV can decode')
        self.rewind()
        native = self._native = first.left.shape[1], first.left.shape[0]
        cal = self._find_calibration(calibration)
        self.assumed_focal = cal is None and fx <= 0
        self.camera, self._rectify = self._camera(cal, rectify, fx, baseline, native)
        # a calibration says the images are raw, but they are published as they are
        self.unrectified = not rectify and cal is not None and any(c.raw for c in cal)
        self._size = None if size is None or tuple(size) == native else tuple(size)
        if self._size is not None:
            self.camera = self.camera.resized(*self._size)

    def _list_folder(self) -> list[tuple[Path, Path | None]]:
        if not self.path.is_dir():
            raise SourceError(f"source 'folder' needs a directory; {self.path} is not one")
        if not self.stereo:
            files = _images(self.path)
            if not files:
                raise SourceError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {self.path}')
            return [(f, None) for f in files]
        left, right = _images(self.path / 'left'), _images(self.path / 'right')
        if not left or len(left) != len(right):
            raise SourceError(f'stereo folder {self.path}: left/ has {len(left)} images and right/ has '
                              f'{len(right)}; they must be equal and non-zero (pairs in sorted order)')
        return list(zip(left, right))

    def _find_calibration(self, given: str) -> list[Calibration] | None:
        base = self.path if self.path.is_dir() else self.path.parent
        if self.stereo:
            folder = Path(given).expanduser() if given else base
            files = [folder / 'left.yaml', folder / 'right.yaml']
            if not all(f.is_file() for f in files):
                if given:
                    raise SourceError(f'calibration folder {folder} must hold left.yaml and right.yaml')
                return None
            return [Calibration.load(f) for f in files]
        if given:
            if not Path(given).expanduser().is_file():
                raise SourceError(f'calibration file {given} does not exist')
            return [Calibration.load(Path(given).expanduser())]
        names = ('ost.yaml', 'camera.yaml', f'{self.path.stem}.yaml')
        found = [base / n for n in names if (base / n).is_file()]
        return [Calibration.load(found[0])] if found else None

    def _camera(self, cal: list[Calibration] | None, rectify: bool, fx: float, baseline: float,
                native: tuple[int, int]) -> tuple[Camera, list[Callable[[np.ndarray], np.ndarray]]]:
        """The rectified camera at the native size and the per-view rectifiers (if any)."""
        if cal is None:
            if rectify:
                raise SourceError('rectify needs a calibration YAML (none given or found)')
            if self.stereo and (fx <= 0 or baseline <= 0):
                raise SourceError(f'stereo folder {self.path} has no left.yaml/right.yaml: set the fx (px) '
                                  'and baseline (m) parameters of the rectified pair')
            f = fx if fx > 0 else fov_focal(native[0])
            return Camera(pinhole(*native, f), *native, baseline if self.stereo else 0.0), []
        if rectify and cal[0].size != native:
            raise SourceError(f'calibration is for {cal[0].size[0]}x{cal[0].size[1]} images but the images '
                              f'are {native[0]}x{native[1]}; rectify needs them equal')
        try:
            b = baseline_from_projection(cal[1].p) if self.stereo else 0.0
        except ValueError as e:
            raise SourceError(f'right calibration: {e}') from None
        camera = Camera(cal[0].p.copy(), *cal[0].size, b)
        camera.p[0, 3] = 0.0
        if camera.width != native[0] or camera.height != native[1]:
            camera = camera.resized(*native)
        return camera, [c.rectifier() for c in cal] if rectify else []

    def _read_raw(self) -> Frame | None:
        if self.kind == 'folder':
            if self._index >= len(self._pairs):
                return None
            left, right = self._pairs[self._index]
            self._index += 1
            return Frame(read_rgb(left), None if right is None else read_rgb(right))
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.path))
        ok, bgr = self._cap.read()
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else None

    def read(self) -> Frame | None:
        """The next frame (rectified, resized), None at the end; SourceError if a file cannot
        be read (the position still advances, so the next call reads the next file)."""
        frame = self._read_raw()
        if frame is None:
            return None
        views = [frame.left] + ([frame.right] if frame.right is not None else [])
        if self._rectify:
            views = [fn(v) for fn, v in zip(self._rectify, views)]
        sizes = {(v.shape[1], v.shape[0]) for v in views}
        if sizes != {self._native}:
            raise SourceError(f'{self.path}: frame size {" and ".join(f"{w}x{h}" for w, h in sorted(sizes))} '
                              f'differs from the first frame ({self._native[0]}x{self._native[1]})')
        if self._size is not None:
            views = [cv2.resize(v, self._size, interpolation=cv2.INTER_AREA) for v in views]
        return Frame(*views)

    def rewind(self) -> None:
        """Start the sequence again."""
        self._index = 0
        self.close()

    def close(self) -> None:
        """Release the video file, if open."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# ----------------------------------------------------------------------------- synthetic
class SyntheticSource:
    """Stereo frames of ``depth_ros.synthetic.random_scene(seed)`` with exact ground truth,
    seen by a camera moving slowly along a short path (30 cm sideways, 20 cm forwards, a few
    degrees of yaw), played forwards then backwards so the loop has no jump.

    The first frame is rendered at once; the other ``frames - 1`` in a background thread
    (about 0.1 s each at 640x480), so ``read()`` never waits: until all are ready it plays
    the ones rendered so far. ``fx`` (px) 0 = the synthetic camera's 500 px at 640 px width,
    scaled to ``size``; ``baseline`` (m) 0 = its 0.12 m. ``photos``: photographs on surfaces
    (the ``depth-ros-render textures`` bank) instead of procedural textures.
    """

    stereo = True
    path = 'synthetic scene'

    def __init__(self, size: tuple[int, int] = (640, 480), *, fx: float = 0.0, baseline: float = 0.0,
                 seed: int = 0, frames: int = 30, photos: bool = False) -> None:
        from . import synthetic

        width, height = size
        default = synthetic.StereoCamera()
        fx = fx if fx > 0 else default.fx * width / default.width
        baseline = baseline if baseline > 0 else default.baseline
        self.camera = Camera(pinhole(width, height, fx), width, height, baseline)
        self._render_camera = synthetic.StereoCamera(width, height, fx, fx, (width - 1) / 2, (height - 1) / 2, baseline)
        self._scene = synthetic.random_scene(seed, photos=synthetic.PhotoBank.load() if photos else None)
        self._render = synthetic.render_stereo
        ease = (1 - np.cos(np.pi * np.linspace(0.0, 1.0, frames))) / 2 if frames > 1 else np.zeros(1)
        self._poses = [synthetic.pose_matrix(x=0.3 * s - 0.15, z=0.2 * s, yaw=0.06 * (s - 0.5)) for s in ease]
        self._frames: list[Frame] = [self._frame(0)]
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._render_rest, name='synthetic-render', daemon=True)
        self._thread.start()

    def _frame(self, index: int) -> Frame:
        out = self._render(self._scene, self._render_camera, self._poses[index])
        return Frame(out['left'], out['right'], out['depth'], out['disparity'])

    def _render_rest(self) -> None:
        for i in range(1, len(self._poses)):
            if self._stop.is_set():
                return
            self._frames.append(self._frame(i))

    @property
    def poses(self) -> list[np.ndarray]:
        """Scene-from-left-camera transforms (4, 4) of the frames, in order (see ``synthetic.pose_matrix``)."""
        return list(self._poses)

    @property
    def rendered(self) -> int:
        """Frames rendered so far."""
        return len(self._frames)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the loop to be rendered; True once it is (or rendering
        stopped)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def read(self) -> Frame:
        """The next frame of the forwards-backwards loop over the frames rendered so far."""
        n = len(self._frames)
        period = max(2 * n - 2, 1)
        k = self._count % period
        self._count += 1
        return self._frames[k if k < n else period - k]

    def rewind(self) -> None:
        """Start the loop again at the first frame."""
        self._count = 0

    def close(self) -> None:
        """Stop the background rendering (a frame in progress is left to the daemon thread after 1 s)."""
        self._stop.set()
        self._thread.join(timeout=1.0)
