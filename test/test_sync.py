"""Input synchronization: the fallback policies' exact/approximate semantics and bounded queues,
and the Synchronizer over DDS on both implementations (message_filters when importable)."""
from __future__ import annotations

import pytest
import rclpy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from depth_ros.nodes import sync
from depth_ros.nodes.sync import ApproximateTimePolicy, ExactTimePolicy, Synchronizer
from ros_harness import RELIABLE, Probe, require, spinning, wait_until
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)

MS = 1_000_000  # ns


def test_exact_policy_pairs_equal_stamps_only_and_emits_each_message_once():
    p = ExactTimePolicy(3, queue_size=4)
    assert p.add(0, 10 * MS, 'a10') is None
    assert p.add(1, 10 * MS, 'b10') is None
    assert p.add(1, 20 * MS, 'b20') is None
    assert p.add(2, 11 * MS, 'c11') is None  # 1 ms off: never paired in exact mode
    assert p.add(2, 10 * MS, 'c10') == ('a10', 'b10', 'c10')
    assert all(10 * MS not in q for q in p.queues)
    assert p.add(0, 20 * MS, 'a20') is None
    assert p.add(2, 20 * MS, 'c20') == ('a20', 'b20', 'c20')  # arrival order does not matter
    assert p.add(0, 20 * MS, 'again') is None  # already emitted


def test_exact_policy_queues_are_bounded_and_evict_the_oldest():
    p = ExactTimePolicy(2, queue_size=3)
    for t in range(10):
        assert p.add(0, t * MS, f'l{t}') is None
    assert sorted(p.queues[0]) == [7 * MS, 8 * MS, 9 * MS]
    assert p.add(1, 2 * MS, 'r2') is None  # its partner was evicted
    assert p.add(1, 8 * MS, 'r8') == ('l8', 'r8')
    assert len(p.queues[1]) == 1  # r2 still waits, bounded by queue_size


def test_approximate_policy_pairs_within_slop_closest_first():
    p = ApproximateTimePolicy(3, queue_size=5, slop=0.010)
    p.add(0, 100 * MS, 'a100')
    p.add(1, 93 * MS, 'b93')
    p.add(1, 104 * MS, 'b104')
    assert p.add(2, 120 * MS, 'c120') is None  # 20 ms from a100 > slop
    assert p.add(2, 103 * MS, 'c103') == ('a100', 'b104', 'c103')  # b104 closer than b93
    assert 93 * MS in p.queues[1] and 120 * MS in p.queues[2]  # the unused ones stay queued


def test_approximate_policy_requires_the_whole_set_within_slop():
    p = ApproximateTimePolicy(3, queue_size=5, slop=0.010)
    p.add(0, 100 * MS, 'a')
    p.add(1, 92 * MS, 'b')
    # c at 108: each within 10 ms of a, but b..c spans 16 ms
    assert p.add(2, 108 * MS, 'c') is None
    assert p.add(2, 101 * MS, 'c2') == ('a', 'b', 'c2')


def test_approximate_policy_bounded():
    p = ApproximateTimePolicy(2, queue_size=2, slop=0.001)
    for t in range(0, 100, 10):
        assert p.add(0, t * MS, t) is None
    assert len(p.queues[0]) == 2
    with pytest.raises(ValueError):
        ApproximateTimePolicy(2, queue_size=0, slop=0.1)
    with pytest.raises(ValueError):
        ApproximateTimePolicy(2, queue_size=2, slop=-1.0)


def _info(stamp_ms: int) -> CameraInfo:
    msg = CameraInfo(header=Header(frame_id='f'))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ms * MS, 1_000_000_000)
    return msg


@pytest.mark.parametrize('use_message_filters', [True, False], ids=['message_filters', 'fallback'])
def test_synchronizer_over_dds(ros, use_message_filters):
    if use_message_filters:
        require('message_filters')
    node = rclpy.create_node(f'sync_{int(use_message_filters)}')
    probe = Probe(f'sync_probe_{int(use_message_filters)}')
    sets, problems = [], []
    s = Synchronizer(node, [(CameraInfo, 'a'), (CameraInfo, 'b')], lambda *m: sets.append(m), qos=RELIABLE,
                     queue_size=3, approximate=True, slop=0.005, on_unsynchronized=problems.append,
                     use_message_filters=use_message_filters, grace=0.0)
    assert s.backend == ('message_filters' if use_message_filters else 'fallback')
    with spinning(node, probe):
        pubs = [probe.advertise('a', CameraInfo), probe.advertise('b', CameraInfo)]
        # both sides matched (a publisher that has not yet matched the subscription drops the message)
        wait_until(lambda: all(sub.get_publisher_count() for sub in s._subscriptions)
                   and all(pub.get_subscription_count() for pub in pubs))
        probe.publish('a', _info(1000))
        probe.publish('b', _info(1002))  # within 5 ms
        wait_until(lambda: sets)
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in sets[-1]] == [(1, 0), (1, 2 * MS)]
        for k in range(5):  # b is 50 ms late: never within slop
            probe.publish('a', _info(2000 + 100 * k))
            probe.publish('b', _info(2050 + 100 * k))
        msg = wait_until(lambda: problems and problems[-1])
        assert 'not synchronized' in msg and '/a 2.' in msg and '/b 2.' in msg, msg
        assert 'differ by 50.0 ms' in msg, msg  # the offset, not the latest stamps' spread (issue 12: 150 ms)
        assert len(sets) == 1
        for k in range(10):  # b silent
            probe.publish('a', _info(3000 + 100 * k))
        wait_until(lambda: 'no messages on /b' in problems[-1])
        assert len(sets) == 1
        s.destroy()
        wait_until(lambda: node.count_subscribers('a') == 0)


@pytest.mark.parametrize('use_message_filters', [True, False], ids=['message_filters', 'fallback'])
@pytest.mark.parametrize('approximate', [True, False], ids=['approximate', 'exact'])
def test_negative_stamps_are_rejected_before_the_synchronizer(ros, use_message_filters, approximate):
    """Issue 12: a negative stamp made message_filters raise in the callback (holding its lock);
    spin() re-raised it and the node died (or hung, with an exact set). Now it is rejected."""
    if use_message_filters:
        require('message_filters')
    tag = f'{int(use_message_filters)}{int(approximate)}'
    node = rclpy.create_node(f'sync_neg_{tag}')
    probe = Probe(f'sync_neg_probe_{tag}')
    sets, rejected = [], []
    s = Synchronizer(node, [(CameraInfo, 'a'), (CameraInfo, 'b')], lambda *m: sets.append(m), qos=RELIABLE,
                     queue_size=3, approximate=approximate, slop=0.005, on_rejected=rejected.append,
                     use_message_filters=use_message_filters)
    with spinning(node, probe) as executor:
        pubs = [probe.advertise('a', CameraInfo), probe.advertise('b', CameraInfo)]
        # both sides matched (a publisher that has not yet matched the subscription drops the message)
        wait_until(lambda: all(sub.get_publisher_count() for sub in s._subscriptions)
                   and all(pub.get_subscription_count() for pub in pubs))
        bad = _info(1000)
        bad.header.stamp.sec = -5
        probe.publish('a', bad)
        probe.publish('b', bad)
        wait_until(lambda: len(rejected) == 2)
        assert 'negative' in rejected[0] and '/a' in rejected[0] + rejected[1], rejected
        probe.publish('a', _info(2000))  # the next good set still goes through
        probe.publish('b', _info(2000))
        wait_until(lambda: sets)
        assert executor.context.ok() and not sets[0][0].header.stamp.sec < 0


def test_closest_spread_is_the_offset_between_inputs():
    assert sync.closest_spread([[0, 100, 200], [5, 105], [3, 203]]) == 5 * 1
    assert sync.closest_spread([[0, 100 * MS], [205 * MS]]) == 105 * MS


def test_fallback_is_used_without_message_filters(ros, monkeypatch):
    monkeypatch.setattr(sync, 'message_filters', None)
    node = rclpy.create_node('sync_fallback')
    try:
        s = Synchronizer(node, [(CameraInfo, 'x'), (CameraInfo, 'y')], lambda *m: None, qos=RELIABLE)
        assert s.backend == 'fallback'
        with pytest.raises(ImportError):
            Synchronizer(node, [(CameraInfo, 'x')], lambda *m: None, qos=RELIABLE, use_message_filters=True)
    finally:
        node.destroy_node()


def test_message_filters_is_the_default_when_importable(ros):
    require('message_filters')
    node = rclpy.create_node('sync_default')
    try:
        assert Synchronizer(node, [(CameraInfo, 'x')], lambda *m: None, qos=RELIABLE).backend == 'message_filters'
    finally:
        node.destroy_node()
