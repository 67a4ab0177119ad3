"""A short fuzz run (issue 12) against both depth nodes in-process: every class of bad input
(fuzz_client.CLASSES), two tries each, each followed by a good frame that must be answered.
The long run with RSS tracking is bench/fuzz.py."""
from __future__ import annotations

import pytest

from depth_ros.nodes.mono import MonoDepthNode
from depth_ros.nodes.stereo import StereoDepthNode
from fuzz_client import CLASSES, FuzzClient
from ros_harness import overrides, spinning, wait_until
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)

NODES = {'stereo': (StereoDepthNode, {'model': 'opencv_sgbm'}),
         'mono': (MonoDepthNode, {'input_size': [64, 96]})}


@pytest.mark.parametrize('kind', list(NODES))
def test_every_bad_input_class_is_survived_and_the_next_good_frame_answered(ros, kind):
    cls, params = NODES[kind]
    node = cls(parameter_overrides=overrides(lazy=False, **params))
    client = FuzzClient(kind, 160, 120, seed=1, name=f'fuzz_{kind}')
    with spinning(node, client):
        wait_until(client.connected)
        assert client.good_frame_answered(timeout=10.0)
        result = client.run(tries=2, timeout=5.0)
    assert result.total == (2 * len(CLASSES), 2 * len(CLASSES)), result.unanswered
    causes = set(node.errors.problems)
    expected = {'encoding', 'size', 'stamp', 'info_size', 'intrinsics'} | ({'baseline'} if kind == 'stereo' else set())
    assert expected <= causes, causes
    assert 'internal' not in causes, node.errors.problems['internal'].message
