"""depth_ros: depth from cameras for ROS 2.

The runtime (``depth_ros.inference``, ``depth_ros.geometry``, ``depth_ros.nodes``) needs numpy,
OpenCV and ONNX Runtime only; ``depth_ros.nets`` and ``depth_ros.training`` need torch.
"""
__version__ = '0.1.0'
