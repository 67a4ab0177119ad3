"""What launch/stereo.launch.py and launch/mono.launch.py share (imports ``launch``, so only
launch files use this module): arguments, the depth node with its parameter file and input
remaps, the optional ``camera_source`` (``demo:=true``) and RViz (``rviz:=true``), and the Fast
DDS transport setting of the processes started (``FASTDDS_TRANSPORTS``)."""
from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'depth_ros'
TRUE = ('true', '1', 'yes', 'on')
# Fast DDS's default transports with 4 MB socket buffers, which also make the shared-memory
# segment 8 MB (2x): a publisher then delivers 640x480 images and clouds to best-effort
# subscribers in other processes (measured: 40 of 40 images instead of 0-8 of 40). It is a
# publisher-side setting that still talks to processes with the defaults (unlike LARGE_DATA, whose
# participants never match default ones). Set only when the user has not set the variable; no
# effect with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (rmw_fastrtps then sets its own transports).
FASTDDS_TRANSPORTS = ('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT?sockets_size=4MB')


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
    """A boolean launch argument ('true'/'false')."""
    return LaunchConfiguration(name).perform(context).strip().lower() in TRUE


def depth_launch_description(kind: str, inputs: dict[str, tuple[str, str]]) -> LaunchDescription:
    """Launch description of ``<kind>_depth_node`` (kind 'stereo' or 'mono'); ``inputs`` maps a
    launch argument to (the node's input topic, its description), e.g. 'left_image':
    ('left/image_rect', ...), so ``left_image:=/camera/left/image_rect`` remaps it."""
    args = [
        DeclareLaunchArgument('model', default_value='', description='Model (overrides params_file): '
                              + ('opencv_sgbm, opencv_bm, ' if kind == 'stereo' else '')
                              + 'a shipped model name or a model card/.onnx path.'),
        DeclareLaunchArgument('backend', default_value='', description='auto | onnxruntime | torch '
                              '(overrides params_file).'),
        DeclareLaunchArgument('decimation', default_value='', description='Output resolution divisor '
                              '(overrides params_file).'),
        DeclareLaunchArgument('input_reliability', default_value='', description='best_effort (REP 2003; '
                              'matches every publisher, but large images from another process may be lost) | '
                              'reliable (every image arrives; does not match best-effort publishers) '
                              '(overrides params_file).'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the nodes and topics.'),
        DeclareLaunchArgument('params_file', default_value=share('config', f'{kind}.yaml'),
                              description=f'Parameters of {kind}_depth_node.'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='Use the /clock topic.'),
        DeclareLaunchArgument('demo', default_value='false', description='Also start camera_source (a '
                              'synthetic camera with ground truth) as the input.'),
        DeclareLaunchArgument('camera_params_file', default_value=share('config', 'camera_source.yaml'),
                              description='Parameters of camera_source (demo:=true).'),
        DeclareLaunchArgument('rviz', default_value='false', description='Start RViz (if rviz2 is installed).'),
    ] + [DeclareLaunchArgument(arg, default_value=topic, description=text)
         for arg, (topic, text) in inputs.items()]
    return LaunchDescription(args + [OpaqueFunction(function=_setup, args=[kind, inputs])])


def _setup(context: LaunchContext, kind: str, inputs: dict[str, tuple[str, str]]) -> list[Action]:
    value = lambda name: LaunchConfiguration(name).perform(context).strip()  # noqa: E731
    namespace = value('namespace')
    common = {'use_sim_time': flag(context, 'use_sim_time')}
    overrides = dict(common)
    for name in ('model', 'backend', 'input_reliability'):
        if value(name):
            overrides[name] = value(name)
    if value('decimation'):
        overrides['decimation'] = int(value('decimation'))
    name, transports = FASTDDS_TRANSPORTS
    actions: list[Action] = [] if name in context.environment else [SetEnvironmentVariable(name, transports)]
    actions.append(Node(
        package=PACKAGE, executable=f'{kind}_depth_node', name=f'{kind}_depth_node', namespace=namespace,
        parameters=[value('params_file'), overrides], output='screen',
        remappings=[(topic, value(arg)) for arg, (topic, _) in inputs.items()]))
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
