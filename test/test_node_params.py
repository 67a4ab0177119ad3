"""Parameters of the nodes: launch/YAML overrides are checked when declared (the value a node
reports is the value it runs with, read-only or not), and ``input_reliability`` sets the QoS of
the depth nodes' input subscriptions."""
from __future__ import annotations

import pytest
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy

from depth_ros.nodes.params import ParameterSet
from depth_ros.nodes.mono import MonoDepthNode
from depth_ros.nodes.stereo import StereoDepthNode
from ros_harness import overrides, spinning, wait_until
from ros_harness import context_fixture, ros_fixture  # noqa: F401 (the context and ros fixtures)


@pytest.mark.parametrize('read_only', [True, False])
def test_invalid_overrides_are_declared_with_the_default(context, capfd, read_only):
    given = {'count': 500, 'mode': 'sometimes', 'scale': 'big', 'good': 7, 'depth': 4, 'far': 40}
    node = Node('params', context=context, parameter_overrides=overrides(**given))
    try:
        p = ParameterSet(node)
        used = {'count': p.declare('count', 5, 'A count.', range=(1, 100), read_only=read_only),
                'mode': p.declare('mode', 'a', 'A mode.', choices=('a', 'b'), read_only=read_only),
                'scale': p.declare('scale', 1.0, 'A scale.', range=(0.1, 2.0), read_only=read_only),
                'good': p.declare('good', 1, 'A valid override.', range=(0, 10), read_only=read_only),
                # an integer given for a float parameter (`max_depth: 4` in YAML) is that float
                'depth': p.declare('depth', 20.0, 'A float.', range=(0.0, 30.0), read_only=read_only),
                'far': p.declare('far', 20.0, 'Out of range.', range=(0.0, 30.0), read_only=read_only)}
        assert used == {'count': 5, 'mode': 'a', 'scale': 1.0, 'good': 7, 'depth': 4.0, 'far': 20.0}
        assert isinstance(used['depth'], float)
        assert {name: node.get_parameter(name).value for name in used} == used  # what `ros2 param get` shows
        assert node.describe_parameter('mode').read_only == read_only
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    for words in ('parameter count:', "mode must be one of a, b; got 'sometimes'", 'parameter scale:',
                  "using the default 'a'", 'parameter far:'):
        assert words in err, err
    assert 'parameter good' not in err and 'parameter depth' not in err


@pytest.mark.parametrize('node_type, topics, params', [
    (StereoDepthNode, ['/left/image_rect', '/left/camera_info', '/right/image_rect', '/right/camera_info'], {}),
    (MonoDepthNode, ['/image', '/camera_info'], {'model': 'no_such_model'})])  # runs without a model
def test_input_reliability_sets_the_input_subscriptions_qos(ros, node_type, topics, params):
    for value, policy in (('best_effort', ReliabilityPolicy.BEST_EFFORT), ('reliable', ReliabilityPolicy.RELIABLE)):
        node = node_type(parameter_overrides=overrides(lazy=False, input_reliability=value, **params))
        with spinning(node):
            assert node.describe_parameter('input_reliability').read_only
            for topic in topics:
                (info,) = wait_until(lambda: node.get_subscriptions_info_by_topic(topic))  # noqa: B023
                assert info.qos_profile.reliability == policy, (topic, value)
