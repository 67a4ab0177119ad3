"""stereo_depth_node on a rectified stereo pair.

    ros2 launch depth_ros stereo.launch.py demo:=true             # with the synthetic camera
    ros2 launch depth_ros stereo.launch.py left_image:=/cam/left/image_rect left_info:=/cam/left/camera_info \
        right_image:=/cam/right/image_rect right_info:=/cam/right/camera_info

Arguments: model, backend, decimation, input_reliability, namespace, params_file
(config/stereo.yaml), use_sim_time, demo, camera_params_file, rviz, and the input remaps below
(`ros2 launch ... --show-args`). The processes started get FASTDDS_BUILTIN_TRANSPORTS (larger
Fast DDS buffers for large messages, see depth_ros/launch_common.py) unless it is set already.
"""
from depth_ros.launch_common import depth_launch_description


def generate_launch_description():
    return depth_launch_description('stereo', {
        'left_image': ('left/image_rect', 'Left rectified image topic.'),
        'left_info': ('left/camera_info', 'Left camera_info topic.'),
        'right_image': ('right/image_rect', 'Right rectified image topic.'),
        'right_info': ('right/camera_info', 'Right camera_info topic (P[3] = -fx * baseline).'),
    })
