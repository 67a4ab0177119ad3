"""ROS 2 nodes: ``stereo_depth_node`` (stereo.py), ``mono_depth_node`` (mono.py), ``camera_source``
(camera_source.py). What the depth nodes share: base.py (the node), params.py (parameters and
QoS), inputs.py (lazy subscription, DDS watch), sync.py (input synchronization, stamp checks),
worker.py (newest-only worker), outputs.py (depth, camera_info, points), diagnostics.py
(problem reports, /diagnostics) and runtime.py (``run_node``, guarded callbacks, log forwarding)."""
