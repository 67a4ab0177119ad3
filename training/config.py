"""Training configuration: every default in one place, YAML recipes and ``key=value`` overrides.

A run is described by a :class:`TrainConfig` (sections model, data, optim, schedule, loss, log,
system). Recipes (``training/recipes/<name>.yaml``) override the defaults section by section
and may start from another recipe with ``base: <name>``; ``--set section.key=value`` (or just
``key=value`` when the field name is unique) overrides the recipe. Values are parsed as YAML
(``1e-3``, ``[1, 2]``, ``{a: 1}``, ``true``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping

import yaml

RECIPES_DIR = Path(__file__).resolve().parent / 'recipes'


class ConfigError(ValueError):
    """A recipe or override names an unknown section/key or has a value of the wrong type."""


@dataclass
class ModelConfig:
    arch: str = 'fastdepth'            # registered network (depth_ros.nets.list_models())
    options: dict = field(default_factory=dict)   # create_model(arch, **options)
    init: str = ''                     # start from: checkpoint .pt, model card or shipped model name ('' = random)
    init_narrowed: bool = False        # init holds a wider/deeper network of the same family: take its leading
                                       # channels and first/last layers (the network's load_narrowed, AnyNet)
    channels_last: bool = False        # NHWC memory format (faster convs on recent GPUs)
    compile: bool = False              # torch.compile the training module
    freeze_bn: bool = False            # BatchNorm layers keep their statistics (eval mode) while training: fine-tuning
                                       # weights recovered from ONNX (BN folded into the convs) or with small batches
    trainable: list = field(default_factory=list)  # parameter-name prefixes that train (e.g. [spn]); the rest is
                                       # frozen, its modules in eval mode ([] = everything trains)


@dataclass
class DataConfig:
    source: str = 'synthetic'          # 'synthetic' or '<reader>:<path>' (see training.stream_setup)
    height: int = 256                  # training crop / render size, px
    width: int = 512
    batch_size: int = 8                # per process
    max_disparity: float = 192.0       # stereo: largest disparity rendered / supervised, px
    content: str = 'basic'             # source 'synthetic': scene content (basic | rich | held | boards)
    hfov: list = field(default_factory=lambda: [45.0, 100.0])  # source 'synthetic': lens range, degrees
    textures: bool = False             # source 'synthetic': photographs (cache: depth-ros-render textures)
    f_canonical: float = 0.0           # mono: focal (px) of the camera depth is expressed in (0: each camera's own)
    epoch_size: int = 20000            # samples per "epoch" (schedules, rebalancing); readers: 0 = one pass
    resize: float = 1.0                # readers: scale samples by this before the random crop
    resize_to: list = field(default_factory=list)  # readers: resize samples to [H, W] instead (no crop)
    val_source: str = ''               # '' = the held-out split of `source`
    val_batches: int = 8               # fixed validation batches
    val_batch_size: int = 4
    augment: dict = field(default_factory=dict)   # hflip, channel_permutation, photometric (bools)
    workers: int = 2                   # DataLoader workers for dataset readers
    pairs: int = 64                    # mono: pairs per image sampled from dense depth for ranking terms
    pair_equal: float = 0.02           # pairs with depth ratio within 1 +- this are 'equal' (r = 0)
    max_depth: float = 0.0             # mono metrics: depth cap, m (0: none)


@dataclass
class OptimConfig:
    name: str = 'adam'                 # adam | adamw | sgd
    lr: float = 1e-3                   # peak learning rate
    weight_decay: float = 0.0          # not applied to biases and norm weights
    momentum: float = 0.9              # sgd
    nesterov: bool = False             # sgd
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # adam / adamw
    grad_clip: float = 0.0             # max global gradient norm (0: off)


@dataclass
class ScheduleConfig:
    name: str = 'constant'             # constant | step | multistep | cosine
    epochs: float = 10.0               # run length in epochs (see data.epoch_size)
    max_steps: int = 0                 # run length in optimiser steps (0: from epochs)
    warmup_steps: int = 0              # linear warm-up from 0 to lr
    step_epochs: float = 10.0          # step: multiply by gamma every step_epochs
    gamma: float = 0.1                 # step / multistep decay factor
    milestones: list = field(default_factory=list)  # multistep: epochs at which to decay
    min_lr: float = 0.0                # cosine: final learning rate


@dataclass
class LossConfig:
    # term name -> training.losses.build_loss entry, plus an optional static 'weight'; the loss
    # name picks its target: kd_pixel -> teacher depth, kd_stages -> teacher stage disparities,
    # kd_pairwise -> teacher feature, ranking -> relative-depth pairs, anything else -> ground truth
    terms: dict = field(default_factory=lambda: {'main': {'name': 'l1'}})
    rebalance: str = ''                # '' (off) or a LossRebalancer mode, e.g. hard_to_easy
    rebalance_per_epoch: int = 5       # rebalancing steps per epoch (seed 004: 5)
    teacher: str = ''                  # knowledge distillation: teacher checkpoint (.pt), card or shipped name


@dataclass
class LogConfig:
    out: str = ''                      # run folder ('' = runs/<recipe>)
    log_every: int = 20                # steps between CSV / progress lines
    eval_every: int = 500              # steps between validations (and plots)
    ckpt_every: int = 500              # steps between last.pt saves
    ckpt_minutes: float = 10.0         # ... and at least every this many minutes (0: off)
    best_metric: str = ''              # '' = epe (stereo), absrel (mono), whdr (pairs only); lower is better
    plots: bool = True                 # loss curves and sample predictions as PNG
    tensorboard: bool = True           # when tensorboard is installed
    progress: bool = True              # tqdm bar (if installed) or a plain progress line


@dataclass
class SystemConfig:
    device: str = 'auto'               # auto (cuda if available) | cpu | cuda | cuda:N
    seed: int = 0                      # python / numpy / torch RNGs and the data stream
    amp: str = 'auto'                  # auto (bf16, else fp16, on CUDA; off on CPU) | off | bf16 | fp16
    deterministic: bool = False        # cudnn deterministic algorithms
    sync_bn: bool = False              # SyncBatchNorm under DDP
    threads: int = 0                   # torch CPU threads (0: torch default)


@dataclass
class TrainConfig:
    name: str = 'run'                  # recipe name, used for the default run folder
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    log: LogConfig = field(default_factory=LogConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    notes: str = ''                    # provenance of the recipe (seed paper, deviations)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML / JSON / checkpoint friendly)."""
        return dataclasses.asdict(self)

    @property
    def out_dir(self) -> Path:
        return Path(self.log.out or f'runs/{self.name}')


SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if dataclasses.is_dataclass(f.default_factory))
_TOP = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in SECTIONS)


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(getattr(TrainConfig(), section))}


def _check_type(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the default's type (int -> float allowed); ConfigError otherwise."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (list, dict, str)):
        ok = isinstance(value, type(default)) or (isinstance(default, list) and isinstance(value, tuple))
        value = list(value) if ok and isinstance(default, list) else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f'{key} must be a {type(default).__name__}, not {value!r}')
    return value


def config_from_dict(data: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the defaults) with the nested values of ``data`` applied; dict-valued
    fields (model.options, loss.terms, data.augment) are replaced, not merged."""
    cfg = copy_config(base or TrainConfig())
    for key, value in data.items():
        if key in _TOP:
            setattr(cfg, key, _check_type(key, value, getattr(cfg, key)))
        elif key in SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f'section {key!r} must be a mapping, not {value!r}')
            section, fields = getattr(cfg, key), _section_fields(key)
            for k, v in value.items():
                if k not in fields:
                    raise ConfigError(f'unknown key {key}.{k}; {key} has: {", ".join(fields)}')
                setattr(section, k, _check_type(f'{key}.{k}', v, getattr(section, k)))
        elif key != 'base':
            raise ConfigError(f'unknown config key {key!r}; sections: {", ".join(SECTIONS)}')
    return cfg


def copy_config(cfg: TrainConfig) -> TrainConfig:
    """A deep copy."""
    return config_from_dict_raw(cfg.to_dict())


def config_from_dict_raw(data: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from ``to_dict()`` output (no validation beyond the dataclass fields)."""
    sections = {s: type(getattr(TrainConfig(), s))(**data[s]) for s in SECTIONS if s in data}
    return TrainConfig(**{k: data[k] for k in _TOP if k in data}, **sections)


def train_size(data: Mapping[str, Any]) -> list[int] | None:
    """[H, W] the network saw in training, from a ``data`` section: a reader's ``resize_to`` when set
    (renders made on the fly, source 'synthetic', ignore it), else the crop or render size."""
    if data.get('resize_to') and data.get('source', 'synthetic') != 'synthetic':
        return [int(v) for v in data['resize_to']]
    return [int(data['height']), int(data['width'])] if 'height' in data else None


def list_recipes() -> list[str]:
    """Names of the recipes shipped in training/recipes/."""
    return sorted(p.stem for p in RECIPES_DIR.glob('*.yaml'))


def recipe_path(recipe: str | Path) -> Path:
    """Path of a recipe given as a file path or a shipped recipe name."""
    path = Path(recipe)
    if path.suffix in ('.yaml', '.yml'):
        if not path.is_file():
            raise ConfigError(f'recipe file {path} does not exist')
        return path
    shipped = RECIPES_DIR / f'{recipe}.yaml'
    if not shipped.is_file():
        raise ConfigError(f'no recipe {str(recipe)!r}; shipped: {", ".join(list_recipes())}')
    return shipped


def load_recipe(recipe: str | Path, _seen: tuple[Path, ...] = ()) -> TrainConfig:
    """The config of a recipe (name or path), with its ``base`` recipes applied first; ``name``
    defaults to the recipe's file stem."""
    path = recipe_path(recipe).resolve()
    if path in _seen:
        raise ConfigError(f'recipe {path} includes itself through "base"')
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f'recipe {path} must be a YAML mapping')
    base = None
    if data.get('base'):
        parent = Path(data['base'])
        if parent.suffix in ('.yaml', '.yml') and not parent.is_absolute():
            parent = path.parent / parent
        base = load_recipe(parent, _seen + (path,))
    cfg = config_from_dict({'name': path.stem, **data}, base)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """'section.key=value' (value parsed as YAML) -> (key, value)."""
    key, sep, value = text.partition('=')
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f'overrides are key=value, not {text!r}')
    try:
        parsed = yaml.safe_load(value) if value.strip() else ''
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def resolve_key(key: str) -> tuple[str | None, str]:
    """(section, field) of a dotted or unique bare key; (None, key) for top-level fields."""
    if '.' in key:
        section, name = key.split('.', 1)
        if section not in SECTIONS:
            raise ConfigError(f'unknown section {section!r} in {key!r}; sections: {", ".join(SECTIONS)}')
        if name.split('.')[0] not in _section_fields(section):
            raise ConfigError(f'unknown key {key!r}; {section} has: {", ".join(_section_fields(section))}')
        return section, name
    if key in _TOP:
        return None, key
    owners = [s for s in SECTIONS if key in _section_fields(s)]
    if len(owners) != 1:
        what = 'ambiguous' if owners else 'unknown'
        choices = ', '.join(f'{s}.{key}' for s in owners) or ', '.join(SECTIONS)
        raise ConfigError(f'{what} key {key!r}: use section.key ({choices})')
    return owners[0], key


def apply_overrides(cfg: TrainConfig, overrides: Iterable[str | tuple[str, Any]]) -> TrainConfig:
    """A copy of ``cfg`` with ``key=value`` overrides applied, in order. A key may reach into a
    dict field, e.g. ``model.options.spn_channels=0`` or ``loss.terms.main.lam=6``."""
    data = cfg.to_dict()
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        section, name = resolve_key(key)
        node = data if section is None else data[section]
        *parents, leaf = name.split('.')
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return config_from_dict(data)


def dump_config(cfg: TrainConfig) -> str:
    """The config as YAML text (sections in order)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
