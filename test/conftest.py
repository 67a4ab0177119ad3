"""Test-session setup shared by every test file."""
import os
import random

# Each pytest process talks DDS on its own ROS domain (kept by subprocesses it starts), so
# concurrent test runs on one machine never see each other's topics.
if 'DEPTH_ROS_TEST_DOMAIN' not in os.environ:
    os.environ['DEPTH_ROS_TEST_DOMAIN'] = os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(1, 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
