"""stereo_depth_node on a rectified stereo pair.

    ros2 launch depth_ros stereo.launch.py demo:=true             # with the synthetic camera
    ros2 launch depth_ros stereo.launch.py left_image:=/cam/left/image_rect left_info:=/cam/left/camera_info \
        right_image:=/cam/right/image_rect right_info:=/cam/right/camera_info

Arguments and their choices: `ros2 launch depth_ros stereo.launch.py --show-args`; what they
do: depth_ros/launch_common.py.
"""
from depth_ros.launch_common import depth_launch_description


def generate_launch_description():
    return depth_launch_description('stereo')
