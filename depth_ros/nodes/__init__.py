"""ROS 2 nodes: ``stereo_depth_node`` (stereo.py), ``mono_depth_node`` (mono.py), ``camera_source``
(camera_source.py); shared helpers in common.py, input synchronization in sync.py."""
