"""depth_ros.training: data, losses, metrics, trainer and CLIs (needs torch: pip install -e .[train])."""
