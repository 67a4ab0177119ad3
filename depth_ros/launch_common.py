"""What the launch files share (imports ``launch``, so only launch files use this module):
arguments (choice-valued ones checked, undeclared ones warned about), the depth node with its
parameter file and input remaps, the optional ``camera_source`` (``demo:=true``) and RViz
(``rviz:=true``), and the Fast DDS transport setting of the processes started
(``FASTDDS_TRANSPORTS``)."""
from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
import launch.logging
from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable,
                            SetLaunchConfiguration)
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'depth_ros'
BOOLEAN = ['true', 'false']
CHECKED = '_depth_ros_arguments_checked'  # set once the arguments given were checked (see checked)
NOT_ARGUMENTS = ('launch-prefix', 'launch-prefix-filter')  # `ros2 launch` options passed as arguments
# Fast DDS's default transports with 4 MB socket buffers, which also make the shared-memory
# segment 8 MB (2x): a publisher then delivers 640x480 images and clouds to best-effort
# subscribers in other processes (measured: 40 of 40 images instead of 0-8 of 40). It is a
# publisher-side setting that still talks to processes with the defaults (unlike LARGE_DATA, whose
# participants never match default ones). Set only when the user has not set the variable; no
# effect with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (rmw_fastrtps then sets its own transports).
FASTDDS_TRANSPORTS = ('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT?sockets_size=4MB')
# Input launch arguments of each kind: argument -> (the node's input topic it remaps, description).
INPUTS = {
    'stereo': {
        'left_image': ('left/image_rect', 'Left rectified image topic.'),
        'left_info': ('left/camera_info', 'Left camera_info topic.'),
        'right_image': ('right/image_rect', 'Right rectified image topic.'),
        'right_info': ('right/camera_info', 'Right camera_info topic (P[3] = -fx * baseline).'),
    },
    'mono': {
        'image': ('image', 'Image topic.'),
        'camera_info': ('camera_info', 'camera_info topic (its focal length makes the depth metric).'),
    },
}


def share(*parts: str) -> str:
    """Path under depth_ros's share directory (where colcon installs launch/ and config/)."""
    return str(Path(get_package_share_directory(PACKAGE), *parts))


def installed(package: str) -> bool:
    """Whether a ROS package is in the ament index."""
    try:
        get_package_prefix(package)
        return True
    except PackageNotFoundError:
        return False


def flag(context: LaunchContext, name: str) -> bool:
    """A boolean launch argument (declared with ``choices=BOOLEAN``)."""
    return LaunchConfiguration(name).perform(context) == 'true'


def checked(actions: list[Action], launch_file: str) -> LaunchDescription:
    """A launch description of ``actions`` that first warns about arguments given that it does
    not declare (``modle:=opencv_bm``), once per launch: when a depth_ros launch file includes
    another, the including one checks for both."""
    description = LaunchDescription()

    def warn(context: LaunchContext) -> list[Action]:
        if CHECKED in context.launch_configurations:
            return []
        declared = {a.name for a in description.get_launch_arguments()}
        unknown = sorted(set(context.launch_configurations) - declared - set(NOT_ARGUMENTS))
        if unknown:
            launch.logging.get_logger(launch_file).warning(
                f'ignoring argument(s) {", ".join(unknown)}: {launch_file} does not declare them (misspelt?); '
                f'its arguments: {", ".join(sorted(declared))} (ros2 launch depth_ros {launch_file} --show-args)')
        return [SetLaunchConfiguration(CHECKED, 'true')]

    for action in [OpaqueFunction(function=warn), *actions]:
        description.add_action(action)
    return description


def depth_launch_description(kind: str) -> LaunchDescription:
    """Launch description of ``<kind>_depth_node`` (kind 'stereo' or 'mono'), its inputs remapped
    by the arguments ``INPUTS[kind]`` (``left_image:=/camera/left/image_rect``)."""
    inputs = INPUTS[kind]
    args = [
        DeclareLaunchArgument('model', default_value='', description='Model (overrides params_file): '
                              + ('opencv_sgbm, opencv_bm, ' if kind == 'stereo' else '')
                              + 'a shipped model name or a model card/.onnx path.'),
        DeclareLaunchArgument('backend', default_value='', choices=['', 'auto', 'onnxruntime', 'torch', 'opencv'],
                              description='Inference backend (overrides params_file; empty: its value).'),
        DeclareLaunchArgument('decimation', default_value='', description='Output resolution divisor, an '
                              'integer >= 1 (overrides params_file).'),
        DeclareLaunchArgument('input_reliability', default_value='', choices=['', 'best_effort', 'reliable'],
                              description='best_effort (REP 2003; matches every publisher, but large images from '
                              'another process may be lost) or reliable (every image arrives; does not match '
                              'best-effort publishers) (overrides params_file; empty: its value).'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the nodes and topics.'),
        DeclareLaunchArgument('params_file', default_value=share('config', f'{kind}.yaml'),
                              description=f'Parameters of {kind}_depth_node.'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=BOOLEAN,
                              description='Use the /clock topic.'),
        DeclareLaunchArgument('demo', default_value='false', choices=BOOLEAN, description='Also start '
                              'camera_source (a synthetic camera with ground truth) as the input.'),
        DeclareLaunchArgument('camera_params_file', default_value=share('config', 'camera_source.yaml'),
                              description='Parameters of camera_source (demo:=true).'),
        DeclareLaunchArgument('rviz', default_value='false', choices=BOOLEAN,
                              description='Start RViz (if rviz2 is installed).'),
    ] + [DeclareLaunchArgument(arg, default_value=topic, description=text)
         for arg, (topic, text) in inputs.items()]
    return checked(args + [OpaqueFunction(function=_setup, args=[kind])], f'{kind}.launch.py')


def _setup(context: LaunchContext, kind: str) -> list[Action]:
    value = lambda name: LaunchConfiguration(name).perform(context).strip()  # noqa: E731
    namespace = value('namespace')
    common = {'use_sim_time': flag(context, 'use_sim_time')}
    overrides = dict(common)
    for name in ('model', 'backend', 'input_reliability'):
        if value(name):
            overrides[name] = value(name)
    if value('decimation'):
        if not value('decimation').isdigit() or int(value('decimation')) < 1:
            raise ValueError(f"decimation must be an integer >= 1, not {value('decimation')!r}")
        overrides['decimation'] = int(value('decimation'))
    name, transports = FASTDDS_TRANSPORTS
    actions: list[Action] = [] if name in context.environment else [SetEnvironmentVariable(name, transports)]
    actions.append(Node(
        package=PACKAGE, executable=f'{kind}_depth_node', name=f'{kind}_depth_node', namespace=namespace,
        parameters=[value('params_file'), overrides], output='screen',
        remappings=[(topic, value(arg)) for arg, (topic, _) in INPUTS[kind].items()]))
    if flag(context, 'demo'):
        actions.append(Node(package=PACKAGE, executable='camera_source', name='camera_source',
                            namespace=namespace, parameters=[value('camera_params_file'), common],
                            output='screen'))
    if flag(context, 'rviz'):
        if installed('rviz2'):
            actions.append(Node(package='rviz2', executable='rviz2', name='rviz2', namespace=namespace,
                                arguments=['-d', share('config', 'depth_ros.rviz')], parameters=[common]))
        else:
            actions.append(LogInfo(msg='rviz:=true but rviz2 is not installed (sudo apt install '
                                       'ros-$ROS_DISTRO-rviz2); the depth outputs are published anyway.'))
    return actions
