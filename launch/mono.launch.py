"""mono_depth_node on one camera.

    ros2 launch depth_ros mono.launch.py demo:=true               # with the synthetic camera
    ros2 launch depth_ros mono.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info

Arguments and their choices: `ros2 launch depth_ros mono.launch.py --show-args`; what they
do: depth_ros/launch_common.py.
"""
from depth_ros.launch_common import depth_launch_description


def generate_launch_description():
    return depth_launch_description('mono')
