"""RTAB-Map RGB-D SLAM on stereo_depth_node's depth (stereo.launch.py with decimation 1, so the
colour and depth images have one size), when rtabmap_ros is installed:

    ros2 launch depth_ros rtabmap.launch.py demo:=true

rgbd_odometry and rtabmap subscribe with (approx_sync false: our depth carries the left image's
exact stamp):
    rgb/image:=left/image_rect  rgb/camera_info:=depth/camera_info  depth/image:=depth/image
Arguments: those of stereo.launch.py, plus frame_id (the robot's base frame, default camera_link,
which camera_source's static TF connects to the optical frames) and rtabmap_args.
"""
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from depth_ros.launch_common import BOOLEAN, checked, flag, installed, share

PACKAGES = ('rtabmap_odom', 'rtabmap_slam')
REMAPS = [('rgb/image', 'left/image_rect'), ('rgb/camera_info', 'depth/camera_info'),
          ('depth/image', 'depth/image')]


def _rtabmap(context):
    missing = [p for p in PACKAGES if not installed(p)]
    if missing:
        return [LogInfo(msg=f'rtabmap_ros is not installed ({", ".join(missing)} missing): sudo apt install '
                            'ros-$ROS_DISTRO-rtabmap-ros. Running the depth pipeline only.')]
    namespace = LaunchConfiguration('namespace').perform(context)
    params = {'frame_id': LaunchConfiguration('frame_id').perform(context), 'subscribe_depth': True,
              'subscribe_rgbd': False, 'approx_sync': False, 'use_sim_time': flag(context, 'use_sim_time')}
    return [
        Node(package='rtabmap_odom', executable='rgbd_odometry', namespace=namespace, parameters=[params],
             remappings=REMAPS, output='screen'),
        Node(package='rtabmap_slam', executable='rtabmap', namespace=namespace, parameters=[params],
             remappings=REMAPS, output='screen',
             arguments=LaunchConfiguration('rtabmap_args').perform(context).split()),
    ]


def generate_launch_description():
    return checked([
        DeclareLaunchArgument('frame_id', default_value='camera_link', description='Base frame for RTAB-Map.'),
        DeclareLaunchArgument('rtabmap_args', default_value='--delete_db_on_start',
                              description='Extra command-line arguments of rtabmap.'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the nodes and topics.'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=BOOLEAN,
                              description='Use the /clock topic.'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(share('launch', 'stereo.launch.py')),
                                 launch_arguments={'decimation': '1'}.items()),
        OpaqueFunction(function=_rtabmap),
    ], 'rtabmap.launch.py')
