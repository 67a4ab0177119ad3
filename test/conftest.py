"""Test-session setup shared by every test file."""
import os
import random

import pytest

# Each pytest process talks DDS on its own ROS domain (kept by subprocesses it starts), so
# concurrent test runs on one machine never see each other's topics.
if 'DEPTH_ROS_TEST_DOMAIN' not in os.environ:
    os.environ['DEPTH_ROS_TEST_DOMAIN'] = os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(1, 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


@pytest.fixture
def torch_one_thread():
    """torch on one intra-op thread for the test (CI machines have 2 cores), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
