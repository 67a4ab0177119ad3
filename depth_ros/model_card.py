"""Model cards: the JSON file beside each exported ONNX graph (no torch needed).

A card says what the graphs compute and how to feed them::

    {
      "format": 1,
      "name": "anynet_spn8",              # file stem, also the name nodes accept as `model`
      "arch": "anynet",                   # registry name in depth_ros.nets
      "options": {"spn_channels": 8},     # create_model options
      "kind": "stereo",                   # "stereo" | "mono"
      "graphs": [{"stages": 1, "file": "anynet_spn8.s1.onnx", "sha256": "..."}, ...],
      "input": {"layout": "NCHW", "color": "rgb", "range": [0, 1], "size": [256, 512],
                "dynamic": true, "multiple_of": 16},
      "output": {"quantity": "disparity", "unit": "px", "scale": 1.0},
      "f_canonical": null,                # mono: focal (px, at network resolution) of the canonical camera
      "trained": false,
      "training": {...}, "metrics": {...},
      "torch_weights": {"file": "anynet_spn8.weights.npz", "sha256": "...", "precision": "fp32"}
    }

``input.size`` is the (height, width) the network was trained/exported at; with ``dynamic``
the graphs accept any size that is a multiple of ``multiple_of``. ``output.scale`` is the
output resolution over the input resolution (0.5 for a half-resolution decoder). Stereo
outputs may add ``max_disparity`` (px), ``incremental`` (step graphs, one per stage) and
``spn_limit`` (px: how far the SPN stage may move the stage before's disparity; absent: no limit).
``torch_weights`` names the network's state dict as a numpy archive, for fine-tuning
(``depth_ros.nets.from_onnx.load_card_weights``).
Mono outputs are metric depth of the canonical camera: depth = output * f_net / f_canonical,
f_net being the focal length in pixels at the network's input resolution.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
# the nodes' default models (README "Results" says why): stereo for CPUs, the best mono student on real images
DEFAULT_STEREO = 'anynet_lite'
DEFAULT_MONO = 'mbv2_fbnet_real2'
QUANTITIES = {'disparity': 'px', 'depth': 'm', 'inverse_depth': '1/m'}
INPUT_NAMES = {'mono': ('image',), 'stereo': ('left', 'right')}  # graph inputs of each kind
# metrics shown by describe_cards (mono: synthetic splits, then the real board's median-scaled and SSI AbsRel)
SUMMARY_METRICS = {'stereo': ('bad3', 'epe'), 'mono': ('absrel', 'delta1', 'absrel_median', 'ssi_absrel')}


class ModelCardError(ValueError):
    """A card or its weights file is missing, malformed or does not match its checksum."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Graph:
    """One ONNX file of a model: runs ``stages`` stages (1 for mono networks)."""
    stages: int
    file: str
    sha256: str = ''


@dataclass
class ModelCard:
    """Parsed model card; ``directory`` is where the card (and its graphs) live."""
    name: str
    arch: str
    kind: str
    graphs: list[Graph]
    input: dict[str, Any]
    output: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    f_canonical: float | None = None
    trained: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    torch_weights: dict[str, Any] = field(default_factory=dict)  # {"file", "sha256", "precision"} (.npz)
    directory: Path = Path('.')

    @property
    def stages(self) -> list[int]:
        """Stage counts available, ascending."""
        return sorted(g.stages for g in self.graphs)

    def graph(self, stages: int | None = None) -> Graph:
        """The graph running ``stages`` stages (None: the most stages available)."""
        want = max(self.stages) if stages is None else stages
        for g in self.graphs:
            if g.stages == want:
                return g
        raise ModelCardError(f'model {self.name!r} has no graph with {want} stages (has {self.stages})')

    def graph_path(self, stages: int | None = None, verify: bool = True) -> Path:
        """Path of a graph file; with ``verify`` its sha256 must match the card."""
        g = self.graph(stages)
        path = self.directory / g.file
        if not path.is_file():
            raise ModelCardError(f'weights file {path} named by model card {self.name!r} does not exist')
        if verify and g.sha256 and sha256_of(path) != g.sha256:
            raise ModelCardError(f'weights file {path} is corrupt or was replaced: sha256 does not match its '
                                 'model card')
        return path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop('directory')
        return {'format': FORMAT, **d}

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON to ``path`` (normally ``<directory>/<name>.json``)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + '\n')
        return path


def network_card(model: Any, *, name: str, arch: str, kind: str, graphs: list[Graph], options: dict[str, Any],
                 size: tuple[int, int] | None, dynamic: bool, trained: bool, info: dict[str, Any] | None,
                 directory: str | Path, precision: str = 'fp32') -> ModelCard:
    """The card of a registered network ``model`` (a depth_ros.nets module, read for its
    ``multiple_of``, ``output_scale``, ``config.max_disparity`` (stereo) and ``f_canonical``
    attributes): RGB [0, 1] NCHW input of (H, W) ``size``, depth (m) or disparity (px) output.
    ``info``: a checkpoint's 'card' entry (``training``, ``metrics``, ``f_canonical``)."""
    info = info or {}
    output: dict[str, Any] = {'quantity': 'disparity' if kind == 'stereo' else 'depth',
                              'unit': 'px' if kind == 'stereo' else 'm',
                              'scale': float(model.output_scale), 'precision': precision}
    max_disparity = getattr(getattr(model, 'config', None), 'max_disparity', None)
    if kind == 'stereo' and max_disparity:  # the largest disparity the network outputs (px at its input)
        output['max_disparity'] = float(max_disparity)
    return ModelCard(
        name=name, arch=arch, kind=kind, graphs=graphs, options=dict(options),
        input={'layout': 'NCHW', 'color': 'rgb', 'range': [0, 1], 'size': list(size) if size else None,
               'dynamic': dynamic, 'multiple_of': int(model.multiple_of)},
        output=output, f_canonical=info.get('f_canonical', getattr(model, 'f_canonical', None)),
        trained=trained, training=info.get('training') or {}, metrics=info.get('metrics') or {},
        directory=Path(directory))


def card_from_dict(data: dict[str, Any], directory: str | Path = '.') -> ModelCard:
    """Validate a card's dictionary and build a ModelCard."""
    if not isinstance(data, dict):
        raise ModelCardError('a model card must be a JSON object')
    if data.get('format', FORMAT) != FORMAT:
        raise ModelCardError(f'model card format {data.get("format")} is not supported (expected {FORMAT})')
    missing = [k for k in ('name', 'arch', 'kind', 'graphs', 'input', 'output') if k not in data]
    if missing:
        raise ModelCardError(f'model card lacks {", ".join(missing)}')
    if data['kind'] not in ('mono', 'stereo'):
        raise ModelCardError(f"model card kind must be 'mono' or 'stereo', not {data['kind']!r}")
    quantity = data['output'].get('quantity')
    if quantity not in QUANTITIES:
        raise ModelCardError(f'model card output quantity {quantity!r} is not one of {", ".join(QUANTITIES)}')
    try:
        graphs = [Graph(int(g['stages']), str(g['file']), str(g.get('sha256', ''))) for g in data['graphs']]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelCardError(f'model card graphs are malformed: {e}') from None
    if not graphs:
        raise ModelCardError('model card lists no graphs')
    fields = {k: v for k, v in data.items() if k not in ('format', 'graphs')}
    return ModelCard(graphs=graphs, directory=Path(directory), **fields)


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a model card JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f'model card {path} does not exist')
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelCardError(f'model card {path} is not valid JSON: {e}') from None
    try:
        return card_from_dict(data, path.parent)
    except TypeError as e:
        raise ModelCardError(f'model card {path} has unexpected fields: {e}') from None


def model_dirs() -> list[Path]:
    """Where shipped models are looked up, in order: $DEPTH_ROS_MODELS, the ament share
    directory (colcon install), the source checkout's models/, <prefix>/share/depth_ros/models."""
    import os
    import sys

    dirs = [Path(p) for p in os.environ.get('DEPTH_ROS_MODELS', '').split(os.pathsep) if p]
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory('depth_ros')) / 'models')
    except Exception:  # ament_index missing or package not installed through colcon
        pass
    dirs.append(Path(__file__).resolve().parent.parent / 'models')
    dirs.append(Path(sys.prefix) / 'share' / 'depth_ros' / 'models')
    return [d for d in dirs if d.is_dir()]


def find_card(model: str | Path) -> Path:
    """Card path for a model given as a card path, an .onnx path (card beside it), or the name
    of a shipped model (``models/<name>.json``)."""
    path = Path(model)
    if path.suffix == '.onnx':
        path = path.with_suffix('.json')
        if not path.is_file():  # stereo graphs are named <name>.s<k>.onnx
            path = path.with_suffix('').with_suffix('.json')
    if path.suffix == '.json':
        if path.is_file():
            return path
        raise ModelCardError(f'model card {path} does not exist')
    for d in model_dirs():
        if (d / f'{model}.json').is_file():
            return d / f'{model}.json'
    known = sorted({p.stem for d in model_dirs() for p in d.glob('*.json')})
    raise ModelCardError(f'no model named {str(model)!r}; shipped models: {", ".join(known) or "none"}')


def shipped_cards(kind: str | None = None, trained: bool = True) -> list[ModelCard]:
    """Valid cards found in ``model_dirs()`` (the first of each name), sorted by name; only
    ``kind`` ('mono' | 'stereo') if given, only trained ones unless ``trained`` is False."""
    cards: dict[str, ModelCard] = {}
    for d in model_dirs():
        for path in sorted(d.glob('*.json')):
            try:
                card = load_card(path)
            except ModelCardError:
                continue
            if (kind is None or card.kind == kind) and (card.trained or not trained):
                cards.setdefault(card.name, card)
    return [cards[name] for name in sorted(cards)]


def describe_cards(cards: list[ModelCard]) -> str:
    """Markdown table of cards: what each model is, how it was trained, its held-out metrics."""
    rows = ['| model | kind | arch (options) | input H x W | stages | size MB | trained | held-out metrics |',
            '|---|---|---|---|---|---|---|---|']
    for c in cards:
        size = sum((c.directory / g.file).stat().st_size for g in c.graphs if (c.directory / g.file).is_file()) / 1e6
        options = ', '.join(f'{k}={v}' for k, v in c.options.items())
        trained = f'{c.training.get("steps", "?")} steps on {c.training.get("device", "?")}' if c.trained else 'no'
        held_out = []
        for key, value in c.metrics.items():
            m = value.get('metrics') if isinstance(value, dict) else None
            shown = [k for k in SUMMARY_METRICS[c.kind] if k in (m or {})]
            if shown:
                held_out.append(f'{key}: ' + ', '.join(f'{k} {m[k]:.3f}' for k in shown))
        rows.append(f'| {c.name} | {c.kind} | {c.arch}{f" ({options})" if options else ""} | '
                    f'{" x ".join(map(str, c.input.get("size") or []))} | {",".join(map(str, c.stages))} | '
                    f'{size:.2f} | {trained} | {"; ".join(held_out) or "-"} |')
    return '\n'.join(rows)


def main() -> None:
    """``python -m depth_ros.model_card [folder]``: the models found (default: the shipped ones)."""
    import sys

    if len(sys.argv) > 1:
        cards = [load_card(p) for p in sorted(Path(sys.argv[1]).glob('*.json'))]
    else:
        cards = shipped_cards(trained=False)
    print(describe_cards(cards))


if __name__ == '__main__':
    main()
