"""ROS 2 bags (MCAP or sqlite3, read and written with the pure-Python ``rosbags`` library) with
messages as rclpy objects: raw CDR from a bag is deserialized by ``rclpy.serialization``; rclpy
messages are written field for field through rosbags' CDR serializer, whose alignment padding
is zero (rclpy's serializer leaves it uninitialized, so the same message would give different
bytes from run to run)."""
from __future__ import annotations

import array
import shutil
import struct
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
from rclpy.serialization import deserialize_message
from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_VERSION = 8  # metadata version rosbag2 has read since Iron; rosbags writes 8 or 9
TYPESTORE = get_typestore(Stores.LATEST)  # message definitions of the connections added here
_NEVER = QosTime(0x7FFFFFFF, 0xFFFFFFFF)  # rosbag2's "infinite" duration
LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, _NEVER, _NEVER,
              QosLiveliness.AUTOMATIC, _NEVER, False)  # /tf_static's QoS: `ros2 bag play` replays it latched


class BagError(Exception):
    """A bag cannot be opened or written (missing, not a bag, existing output)."""


def msgtype_of(msg: Any) -> str:
    """'pkg/msg/Name' of an rclpy message (or of a rosbags typestore message)."""
    if hasattr(msg, '__msgtype__'):
        return msg.__msgtype__
    return f'{type(msg).__module__.split(".")[0]}/msg/{type(msg).__name__}'


def header_stamp(raw: bytes | memoryview) -> int:
    """Header stamp (ns) of a CDR-serialized message whose first field is a std_msgs/Header
    (Image, CameraInfo, ...), read without deserializing the rest."""
    endian = '<' if raw[1] & 1 else '>'  # encapsulation CDR_LE = 0x0001, CDR_BE = 0x0000
    sec, nanosec = struct.unpack_from(endian + 'iI', raw, 4)
    return sec * 1_000_000_000 + nanosec


def to_typestore(msg: Any) -> Any:
    """The rosbags typestore message with the fields of an rclpy message (arrays as numpy views)."""
    if hasattr(msg, '__msgtype__'):
        return msg
    values = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, 'get_fields_and_field_types'):
            value = to_typestore(value)
        elif isinstance(value, array.array):
            value = np.frombuffer(value, value.typecode) if len(value) else np.empty(0, value.typecode)
        elif isinstance(value, list) and value and hasattr(value[0], 'get_fields_and_field_types'):
            value = [to_typestore(v) for v in value]
        values[name] = value
    return TYPESTORE.types[msgtype_of(msg)](**values)


def deserialize(raw: bytes | memoryview, msg_class: type) -> Any:
    """An rclpy message of ``msg_class`` from CDR bytes."""
    return deserialize_message(bytes(raw), msg_class)


def open_reader(path: str | Path) -> Reader:
    """An opened reader of the bag at ``path`` (a bag folder, or an .mcap / .db3 file)."""
    try:
        reader = Reader(Path(path))
        reader.open()
    except Exception as e:  # rosbags raises its own ReaderError, FileNotFoundError, ...
        raise BagError(f'cannot read bag {path}: {e}') from None
    return reader


def prepare_output(path: str | Path, force: bool, inputs: tuple[Path, ...] = ()) -> Path:
    """Check that a bag can be written at ``path``: an existing bag there is removed only with
    ``force`` (and never when it is one of ``inputs``); any other existing path is refused."""
    path = Path(path)
    if any(path.resolve() == p.resolve() for p in inputs):
        raise BagError(f'output {path} is the input bag: choose another output path')
    if path.exists():
        if not force:
            raise BagError(f'output {path} exists: remove it or pass --force to overwrite it')
        if not (path / 'metadata.yaml').is_file():
            raise BagError(f'output {path} exists and is not a bag folder (no metadata.yaml): not overwriting it')
        shutil.rmtree(path)
    return path


class BagWriter:
    """Writes a bag: ``copy`` raw messages of another bag's connections unchanged, ``write``
    rclpy messages on new topics (a connection per topic, added on first use)."""

    def __init__(self, path: Path, storage: str = 'mcap') -> None:
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {", ".join(STORAGES)}; got {storage!r}')
        self.path = path
        self._writer = Writer(path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._copied: dict[int, Connection] = {}  # input connection id -> output connection
        self._topics: dict[str, Connection] = {}  # first output connection of each topic
        self.counts: dict[str, int] = {}  # messages written by ``write`` per topic

    def copy(self, connection: Connection, log_ns: int, raw: bytes | memoryview) -> None:
        """Write a message of ``connection`` (another bag's) as it is, at log time ``log_ns``."""
        out = self._copied.get(connection.id)
        if out is None:
            ext = connection.ext
            msgdef, digest = connection.msgdef.data, connection.digest
            known = connection.msgtype in TYPESTORE.fielddefs
            out = self._copied[connection.id] = self._topics.get(connection.topic) or self._writer.add_connection(
                connection.topic, connection.msgtype, typestore=TYPESTORE if known else None,
                msgdef=msgdef if msgdef or not known else None, rihs01=digest if digest or not known else None,
                serialization_format=getattr(ext, 'serialization_format', 'cdr'),
                offered_qos_profiles=getattr(ext, 'offered_qos_profiles', ()))
            self._topics.setdefault(connection.topic, out)
        self._writer.write(out, log_ns, raw)

    def write(self, topic: str, msg: Any, log_ns: int, latched: bool = False) -> None:
        """Serialize ``msg`` (rclpy, or a rosbags typestore message) onto ``topic`` at ``log_ns``;
        ``latched``: the topic is offered transient-local (on its first message)."""
        msgtype = msgtype_of(msg)
        conn = self._topics.get(topic)
        if conn is None:
            conn = self._topics[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[LATCHED] if latched else ())
        elif conn.msgtype != msgtype:
            raise BagError(f'topic {topic} carries {conn.msgtype}: cannot write a {msgtype} on it (rename it with '
                           '--namespace or the topic options)')
        self._writer.write(conn, log_ns, TYPESTORE.serialize_cdr(to_typestore(msg), msgtype))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        self._writer.close()


def read_messages(path: str | Path, topics: set[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """(topic, log time ns, rclpy message) of a bag's Image, CameraInfo, PointCloud2 and
    DisparityImage messages (all topics, or ``topics``), in log-time order: for tests and tools."""
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from stereo_msgs.msg import DisparityImage
    classes = {msgtype_of(c()): c for c in (Image, CameraInfo, PointCloud2, DisparityImage)}
    reader = open_reader(path)
    try:
        conns = [c for c in reader.connections if c.msgtype in classes and (topics is None or c.topic in topics)]
        for conn, log_ns, raw in reader.messages(connections=conns):
            yield conn.topic, log_ns, deserialize(raw, classes[conn.msgtype])
    finally:
        reader.close()
