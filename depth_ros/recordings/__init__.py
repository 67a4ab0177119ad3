"""Recordings: ROS 2 bags in and out without a ROS 2 distribution (``rosbags``).

``depth-ros-bag`` (cli.bag_main) adds the depth nodes' outputs to a recording (convert.py, run
by the real node offline: offline.py; topic discovery and stamp pairing: pairing.py);
``depth-ros-record`` (cli.record_main) writes camera_source's synthetic stream with ground
truth and poses as a bag (record.py). Bag reading and writing: bagio.py."""
