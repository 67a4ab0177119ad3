"""Node parameters: declaration with a description and a range or choices, validation of
launch/YAML overrides and run-time changes, and the publisher / input QoS parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}


@dataclass(frozen=True)
class ParamSpec:
    """What a declared parameter accepts: numeric ``range`` (inclusive) or string ``choices``."""
    name: str
    default: Any
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str | None:
        """Reason the value is not acceptable, or None."""
        if self.choices is not None and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}; got {value!r}'
        if self.range is not None and isinstance(value, (int, float)):
            if not self.range[0] <= value <= self.range[1]:
                return f'{self.name} must be in [{self.range[0]}, {self.range[1]}]; got {value}'
        return None


class ParameterSet:
    """Declares a node's parameters (each with a description and a range or choices) and
    validates launch/YAML overrides and run-time changes (``ros2 param set``): integers given
    for float parameters are accepted at run time, out-of-range values and unknown choices are
    rejected with a reason, then the node's own ``validate(changes) -> reason | None`` runs and
    ``apply(changes)`` follows."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.specs: dict[str, ParamSpec] = {}
        self._validate: Callable[[dict[str, Any]], str | None] | None = None
        self._apply: Callable[[dict[str, Any]], None] | None = None
        # installed first, so a declaration's override is checked before it is stored
        node.add_on_set_parameters_callback(self._check)

    def declare(self, name: str, default: Any, description: str, *,
                range: tuple[float, float] | None = None, step: float = 0,
                choices: Sequence[str] | None = None, read_only: bool = False) -> Any:
        """Declare ``name`` and return its value (a launch/YAML override, else ``default``).
        An invalid override (wrong type, out of range, not a choice) is never stored: it is
        logged as an error naming the parameter and the parameter is declared with the default,
        so the node starts and ``ros2 param get`` shows the value it runs with. ``read_only``
        parameters cannot change at run time."""
        spec = ParamSpec(name, default, range, tuple(choices) if choices is not None else None)
        desc = ParameterDescriptor(description=description, read_only=read_only)
        if range is not None and isinstance(default, bool):
            raise TypeError(f'parameter {name}: a range makes no sense for a bool')
        if range is not None and isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(range[0]), to_value=int(range[1]), step=int(step or 1))]
        elif range is not None:
            desc.floating_point_range = [FloatingPointRange(from_value=float(range[0]), to_value=float(range[1]),
                                                            step=float(step))]
        if spec.choices is not None:
            desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
        self.specs[name] = spec
        try:  # the override passes rclpy's type and range checks, then _check (choices)
            return self._node.declare_parameter(name, default, desc).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as e:
            reason = e.args[0] if e.args else str(e)
        override = self._node._parameter_overrides.get(name)  # rclpy keeps launch/YAML overrides here
        if isinstance(default, float) and override is not None and override.type_ == Parameter.Type.INTEGER:
            try:  # `max_depth: 4` in YAML or on the command line means 4.0
                return self._node.declare_parameter(name, float(override.value), desc, ignore_override=True).value
            except InvalidParameterValueException as e:
                reason = e.args[0] if e.args else str(e)
        self._node.get_logger().error(f'parameter {name}: {reason}; using the default {default!r}')
        return self._node.declare_parameter(name, default, desc, ignore_override=True).value

    def get(self, name: str) -> Any:
        """Current value of a declared parameter."""
        return self._node.get_parameter(name).value

    def on_change(self, validate: Callable[[dict[str, Any]], str | None],
                  apply: Callable[[dict[str, Any]], None]) -> None:
        """Install the run-time change callbacks (call after every ``declare``)."""
        self._validate, self._apply = validate, apply
        self._node.add_pre_set_parameters_callback(self._coerce)
        self._node.add_post_set_parameters_callback(self._applied)

    def _coerce(self, params: list[Parameter]) -> list[Parameter]:
        out = []
        for p in params:
            spec = self.specs.get(p.name)
            if spec is not None and isinstance(spec.default, float) and p.type_ == Parameter.Type.INTEGER:
                p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
            out.append(p)
        return out

    def _check(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in self.specs}
        for name, value in changes.items():
            reason = self.specs[name].check(value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        reason = self._validate(changes) if self._validate and changes else None
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _applied(self, params: list[Parameter]) -> None:
        changes = {p.name: p.value for p in params if p.name in self.specs}
        if changes and self._apply is not None:
            self._apply(changes)


def declare_qos(params: ParameterSet) -> QoSProfile:
    """Declare ``qos_reliability`` and ``qos_depth`` (publishers; read-only) and return the
    profile they give."""
    reliability = params.declare(
        'qos_reliability', 'reliable', "Reliability of the published topics: 'reliable' (what RViz "
        "and SLAM subscribe with by default) or 'best_effort'.", choices=tuple(RELIABILITY), read_only=True)
    depth = params.declare('qos_depth', 2, 'Publisher history depth (messages kept for slow subscribers).',
                           range=(1, 100), read_only=True)
    return QoSProfile(depth=depth, reliability=RELIABILITY[reliability])


def declare_input_qos(params: ParameterSet) -> QoSProfile:
    """Declare ``input_reliability`` (read-only) and return the input subscriptions' profile:
    the sensor-data profile of REP 2003 (keep last 5, volatile) with that reliability."""
    reliability = params.declare(
        'input_reliability', 'best_effort', "Reliability of the input subscriptions. 'best_effort' (REP 2003 "
        'sensor data; matches best-effort and reliable publishers, but a lost fragment loses the whole '
        'image: with default Fast DDS settings most 640x480 images from another process are lost) or '
        "'reliable' (lost fragments are resent, every image arrives; but a reliable subscription does not "
        'match best-effort publishers, and many camera drivers publish best effort: then nothing arrives '
        'and ROS logs an incompatible-QoS warning).', choices=tuple(RELIABILITY), read_only=True)
    return QoSProfile(depth=qos_profile_sensor_data.depth, history=qos_profile_sensor_data.history,
                      durability=qos_profile_sensor_data.durability, reliability=RELIABILITY[reliability])
