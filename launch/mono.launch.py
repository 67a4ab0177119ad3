"""mono_depth_node on one camera.

    ros2 launch depth_ros mono.launch.py demo:=true               # with the synthetic camera
    ros2 launch depth_ros mono.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info

Arguments: model, backend, decimation, input_reliability, namespace, params_file
(config/mono.yaml), use_sim_time, demo, camera_params_file, rviz, and the input remaps below
(`ros2 launch ... --show-args`). The processes started get FASTDDS_BUILTIN_TRANSPORTS (larger
Fast DDS buffers for large messages, see depth_ros/launch_common.py) unless it is set already.
"""
from depth_ros.launch_common import depth_launch_description


def generate_launch_description():
    return depth_launch_description('mono', {
        'image': ('image', 'Image topic.'),
        'camera_info': ('camera_info', 'camera_info topic (its focal length makes the depth metric).'),
    })
