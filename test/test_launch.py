"""The launch files for real: `colcon build` of this repository into a temporary workspace, then
`ros2 launch depth_ros stereo.launch.py demo:=true` and `mono.launch.py demo:=true` as
subprocesses with the install sourced; outputs are checked from this process over DDS (same ROS
domain, see conftest.py), then Ctrl-C (SIGINT to the process group, as a terminal sends it) must
stop every process cleanly. Also checked: input_reliability reaches the node's subscriptions and
the launch files set FASTDDS_BUILTIN_TRANSPORTS only when the user has not."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from ros_harness import Probe, as_array, require, spinning, wait_until
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)

REPO = Path(__file__).resolve().parent.parent
FRAME = 'camera_left_optical_frame'
TRANSPORTS = 'FASTDDS_BUILTIN_TRANSPORTS'
CAMERA = """/**/camera_source:
  ros__parameters:
    width: 320
    height: 240
    frames: 3
    rate: 5.0
"""


def _installed(package: str) -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix(package)
        return True
    except (PackageNotFoundError, OSError):  # OSError: no ament index at all (AMENT_PREFIX_PATH unset)
        return False


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'  # the venv's ros2/colcon
    return env


@pytest.fixture(scope='module')
def install(tmp_path_factory) -> Path:
    """colcon build of the repository into a temporary workspace; returns its install space."""
    require('launch_ros')
    if shutil.which('ros2', path=_env()['PATH']) is None or shutil.which('colcon', path=_env()['PATH']) is None:
        if os.environ.get('CI') == 'true':
            pytest.fail('ros2 and colcon must be installed in CI (bash ../shared/ros2-tools/install.sh)')
        pytest.skip('ros2 / colcon are not installed')
    ws = tmp_path_factory.mktemp('ws')
    result = subprocess.run(['colcon', '--log-base', str(ws / 'log'), 'build', '--base-paths', str(REPO),
                             '--build-base', str(ws / 'build'), '--install-base', str(ws / 'install')],
                            cwd=ws, env=_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    for f in ('launch/stereo.launch.py', 'launch/mono.launch.py', 'launch/rtabmap.launch.py',
              'config/stereo.yaml', 'config/mono.yaml'):
        assert (ws / 'install/depth_ros/share/depth_ros' / f).is_file(), f
    return ws / 'install'


class Launch:
    """`ros2 launch depth_ros <args>` in its own process group, output in ``log``; ``env``: extra
    environment variables (FASTDDS_BUILTIN_TRANSPORTS is unset unless given here)."""

    def __init__(self, install: Path, args: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.final_log = ''  # the output once interrupted
        command = f'source {install}/setup.bash && exec ros2 launch depth_ros {args}'
        environment = {k: v for k, v in _env().items() if k != TRANSPORTS} | (env or {})
        with open(log, 'w') as out:
            self.proc = subprocess.Popen(['bash', '-c', command], stdout=out, stderr=subprocess.STDOUT,
                                         env=environment, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def environ(self, executable: str) -> dict[str, str]:
        """Environment of the launched process started from ``executable`` (Linux /proc)."""
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                session = int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[3])
                command = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
                if session == self.proc.pid and any(c.endswith(b'/' + executable.encode()) for c in command):
                    variables = Path(f'/proc/{pid}/environ').read_text().split('\0')
                    return dict(v.split('=', 1) for v in variables if '=' in v)
            except (OSError, ValueError, IndexError):  # the process ended meanwhile
                continue
        raise AssertionError(f'no process started from {executable} in the launch')

    def interrupt(self, timeout: float = 30.0) -> str:
        """Ctrl-C as a terminal sends it (every process of the group); all must exit cleanly."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f'ros2 launch did not exit after SIGINT:\n{self.output()}') from None
        out = self.output()
        assert self.proc.returncode == 0, out
        assert 'Traceback' not in out and 'process has died' not in out, out
        assert out.count('process has finished cleanly') == out.count('process started') > 0, out
        for line in out.splitlines():  # a node's clean-up cut short by its watchdog: shown, not failed
            if 'shutdown stuck' in line:
                warnings.warn(line, stacklevel=2)
        return out


@contextmanager
def launched(install: Path, args: str, log: Path, topics: dict[str, type],
             env: dict[str, str] | None = None) -> Iterator[tuple[Launch, Probe, dict[str, Any]]]:
    """Run ``ros2 launch depth_ros <args>`` with a probe on ``topics``; yields (the launch, the
    probe, the first messages with one stamp on every topic), then Ctrl-C: the log is
    ``launch.final_log``."""
    launch = Launch(install, args, log, env)
    probe = Probe(f'launch_probe_{log.stem}')
    for topic, msg_type in topics.items():
        probe.listen(topic, msg_type)
    try:
        with spinning(probe):
            yield launch, probe, _outputs(probe, list(topics)) if topics else {}
    finally:
        launch.final_log = launch.interrupt()


def _outputs(probe: Probe, topics: list[str], timeout: float = 60.0) -> dict:
    """The first set of messages with one stamp on every topic."""
    def match():
        by_stamp = {}
        for t in topics:
            for m in list(probe.received[t]):
                by_stamp.setdefault((m.header.stamp.sec, m.header.stamp.nanosec), {})[t] = m
        return next((s for s in by_stamp.values() if len(s) == len(topics)), None)
    return wait_until(match, timeout=timeout, period=0.2)


def _reliability(probe: Probe, topic: str, node: str) -> ReliabilityPolicy:
    """Reliability of ``node``'s subscription to ``topic``."""
    return wait_until(lambda: next((i.qos_profile.reliability for i in probe.get_subscriptions_info_by_topic(topic)
                                    if i.node_name == node), None))


def ros2_launch(install: Path, args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`ros2 launch depth_ros <args>` run to its end (for launches that stop by themselves)."""
    return subprocess.run(['bash', '-c', f'source {install}/setup.bash && exec ros2 launch depth_ros {args}'],
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def test_console_commands_run_with_ros2_run(install):
    """After colcon build the commands live in lib/depth_ros (not on PATH): `ros2 run` runs them."""
    for command in ('depth-ros-train', 'depth-ros-export', 'depth-ros-evaluate', 'depth-ros-compare',
                    'depth-ros-render', 'depth-ros-demo'):
        r = subprocess.run(['bash', '-c', f'source {install}/setup.bash && ros2 run depth_ros {command} --help'],
                           env=_env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith(f'usage: {command}'), r.stdout + r.stderr
    r = subprocess.run(['bash', '-c', f'source {install}/setup.bash && ros2 run depth_ros depth-ros-train --list'],
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert 'anynet_synthetic' in r.stdout.split(), r.stdout + r.stderr


def test_bad_argument_values_stop_the_launch_with_the_choices(install):
    for args, message in (('stereo.launch.py demo:=ture', 'Argument "demo" provided value "ture" is not valid. '
                                                           "Valid options are: ['true', 'false']"),
                          ('mono.launch.py backend:=onnx', 'Argument "backend" provided value "onnx" is not valid'),
                          ('stereo.launch.py decimation:=two', "decimation must be an integer >= 1, not 'two'")):
        r = ros2_launch(install, args)
        assert r.returncode != 0 and message in r.stdout + r.stderr, r.stdout + r.stderr
        assert 'process started' not in r.stdout + r.stderr
    r = ros2_launch(install, 'stereo.launch.py --show-args')
    assert r.returncode == 0 and "'opencv'" in r.stdout and "'best_effort'" in r.stdout, r.stdout


def test_undeclared_arguments_are_warned_about(install, ros, tmp_path):
    """A misspelt argument is named (the launch goes on); an included launch file's arguments
    (rtabmap.launch.py includes stereo.launch.py) are declared ones."""
    warning = 'ignoring argument(s) modle: stereo.launch.py does not declare them'
    with launched(install, 'stereo.launch.py modle:=opencv_bm model:=opencv_bm', tmp_path / 'typo.log', {}) as (
            launch, probe, _):
        wait_until(lambda: ') loaded' in launch.output(), timeout=60)  # interrupted once running
    assert warning in launch.final_log and 'model:' not in launch.final_log.split(warning)[1].split('\n')[0]
    with launched(install, 'rtabmap.launch.py demo:=false decimation:=1 frame_id:=base', tmp_path / 'rt.log', {}) as (
            launch, probe, _):
        wait_until(lambda: ') loaded' in launch.output(), timeout=60)  # interrupted once running
    assert 'ignoring argument' not in launch.final_log, launch.final_log


def test_stereo_launch_with_demo_camera(install, ros, tmp_path):
    """As a user starts it: the default model (models/anynet_lite) on the synthetic camera."""
    camera = tmp_path / 'camera.yaml'
    camera.write_text(CAMERA)
    topics = {'/cam/depth/image': Image, '/cam/depth/camera_info': CameraInfo, '/cam/points': PointCloud2,
              '/cam/disparity': DisparityImage, '/cam/ground_truth/depth': Image}
    with launched(install, f'stereo.launch.py demo:=true namespace:=cam decimation:=2 input_reliability:=reliable '
                  f'camera_params_file:={camera}', tmp_path / 'stereo.log', topics) as (launch, probe, out):
        assert _reliability(probe, '/cam/left/image_rect', 'stereo_depth_node') == ReliabilityPolicy.RELIABLE
        for executable in ('stereo_depth_node', 'camera_source'):  # set by the launch file when unset
            assert launch.environ(executable)[TRANSPORTS] == 'DEFAULT?sockets_size=4MB'
    log = launch.final_log
    assert 'model anynet_lite (onnxruntime) loaded' in log  # the default: the shipped, trained AnyNet
    depth_msg, info, cloud = out['/cam/depth/image'], out['/cam/depth/camera_info'], out['/cam/points']
    assert all(m.header.frame_id == FRAME for m in out.values())
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ('32FC1', 160, 120)
    assert (info.width, info.height, cloud.width, cloud.height) == (160, 120, 160, 120)
    assert out['/cam/disparity'].image.width == 320
    depth = as_array(depth_msg)
    gt = as_array(out['/cam/ground_truth/depth'])[::2, ::2]
    both = np.isfinite(depth) & np.isfinite(gt)
    assert both.mean() > 0.5 and np.median(np.abs(depth[both] - gt[both]) / gt[both]) < 0.05


def test_mono_launch_with_demo_camera_and_remaps(install, ros, tmp_path):
    export = require('depth_ros.nets.export')
    card = export.export_model('fastdepth', tmp_path, name='tiny_mono', input_size=(64, 96),
                               card={'f_canonical': 100.0})
    camera = tmp_path / 'camera.yaml'
    camera.write_text(CAMERA)
    rviz = not _installed('rviz2')  # rviz:=true must then say so and go on (with rviz2 it needs a display)
    topics = {'/depth/image': Image, '/depth/camera_info': CameraInfo, '/points': PointCloud2}
    with launched(install, f'mono.launch.py demo:=true model:={card} camera_params_file:={camera} '
                  f'image:=left/image_rect camera_info:=left/camera_info rviz:={str(rviz).lower()}',
                  tmp_path / 'mono.log', topics, env={TRANSPORTS: 'UDPv4'}) as (launch, probe, out):
        assert _reliability(probe, '/left/image_rect', 'mono_depth_node') == ReliabilityPolicy.BEST_EFFORT
        assert launch.environ('mono_depth_node')[TRANSPORTS] == 'UDPv4'  # the user's setting is kept
    log = launch.final_log
    assert 'UNTRAINED' in log and ('rviz2 is not installed' in log) == rviz
    assert all(m.header.frame_id == FRAME for m in out.values())
    assert (out['/depth/image'].width, out['/depth/camera_info'].width, out['/points'].width) == (320, 320, 320)


def test_rtabmap_launch_runs_the_pipeline_and_says_what_to_install(install, ros, tmp_path):
    with launched(install, 'rtabmap.launch.py namespace:=slam', tmp_path / 'rtabmap.log', {}) as (launch, probe, _):
        wait_until(lambda: ('stereo_depth_node', '/slam') in probe.get_node_names_and_namespaces(), timeout=30)
        if not (_installed('rtabmap_odom') and _installed('rtabmap_slam')):
            wait_until(lambda: 'rtabmap_ros is not installed' in launch.output(), timeout=10)
