"""Console commands: depth-ros-train, depth-ros-evaluate, depth-ros-compare."""
