"""Benchmark profiles: a data set, a size and a training recipe that trains every method.

Each profile records why its numbers are what they are; a result row stores the
profile name and the full cell config, so the recipe travels with every number.
:func:`request_cell` is the one way from a request (profile, TOML file, ``--set``,
options) to its base cell: every command that builds a cell calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cell import Cell
from .errors import UnknownNameError
from .methods import DEFAULT_METHODS

__all__ = ["Profile", "PROFILES", "get_profile", "request_cell", "SWEEP_SPARSITIES"]

# cpu-vgg: sized from a measured run (docs/results/cpu-vgg/README.md, "Sizing")
CPU_VGG_WIDTH = 0.125
CPU_VGG_EPOCHS = 30
CPU_VGG_WHY = (
    "VGG-16 on the whole real CIFAR-10 subset (18,000 train images: 16,200 train + 1,800 validation; "
    "1,000 test), 32x32, T=4, width 0.125, 30 epochs, IMP 2 rounds; seeds 0-4 for binw-slt and "
    "bnn-lt (the headline pair), 0-2 for snn, 0 for ann, bnn-act-lt, snn-imp, slt: about 4 h on "
    "2 idle cores (sized from a measured run)"
)


# width: the width study (docs/results/width/README.md, "Sizing")
WIDTH_WIDTHS = (0.0625, 0.125, 0.25)
WIDTH_EPOCHS = 12
WIDTH_WHY = (
    "the width study: VGG-16 on the real CIFAR-10 subset (16,200 train + 1,800 validation, 1,000 test), "
    "32x32, T=4, sparsity 0.5, widths 0.0625, 0.125 and 0.25 (a grid axis), 12 epochs; snn, bnn-lt and "
    "binw-slt at seeds 0-2 (paired by seed and width): about 4 h on 2 idle cores"
)


@dataclass(frozen=True)
class Profile:
    """A named benchmark request. ``seeds`` are every method's seeds unless ``method_seeds``
    gives a method its own (the paper's headline pair gets more seeds than the rest); an
    explicit ``--seeds`` replaces both."""

    name: str
    description: str
    dataset: str
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    cell: dict = field(default_factory=dict)  # cell fields, dotted keys (see spikingjelly_lt.cell)
    method_seeds: dict = field(default_factory=dict)  # method -> its seeds (overrides ``seeds``)
    widths: tuple[float, ...] = ()  # the width axis (empty: the cell's model.width alone)

    def base(self) -> Cell:
        """The profile's cell (data set and recipe), before files, --set and options."""
        return Cell().with_values({"data.dataset": self.dataset, **self.cell})

    def seeds_for(self, method: str) -> tuple[int, ...]:
        return tuple(self.method_seeds.get(method, self.seeds))

    def seed_plan(self, methods) -> dict[str, tuple[int, ...]]:
        """``{method: seeds}`` for ``methods`` (each method's own seeds, else the profile's)."""
        return {m: self.seeds_for(m) for m in methods}

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "dataset": self.dataset,
                "methods": list(self.methods), "sparsities": list(self.sparsities), "seeds": list(self.seeds),
                "method_seeds": {m: list(v) for m, v in self.method_seeds.items()}, "sets": dict(self.cell),
                **({"widths": list(self.widths)} if self.widths else {})}


_SMOKE = {  # the CPU recipe every small profile starts from
    "model.width": 0.25, "model.timesteps": 4, "recipe.epochs": 10,
    "recipe.batch_size": 64, "recipe.lr": 0.1, "recipe.score_lr": 0.1,
    "model.tau": 2.0, "model.v_threshold": 0.5, "model.fc_bn": True,
    "model.learn_bn": True, "recipe.imp_rounds": 2, "recipe.rewind_epoch": 1, "recipe.val_fraction": 0.1,
}
SWEEP_SPARSITIES = (0.5, 0.8, 0.9, 0.95)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "smoke",
            "digits 8x8 at width 0.25: the whole default matrix in minutes on 2 CPU cores "
            "(10 % validation split, IMP 2 rounds)",
            dataset="digits",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            cell=dict(_SMOKE),
        ),
        Profile(
            "ticket-time",
            "digits, smoke recipe at 5 epochs per run: time to ticket as sparsity grows. IMP prunes "
            "Kim et al.'s 25 % of the remaining weights per round (K = 3, 6, 9, 11 rounds for 0.5, "
            "0.8, 0.9, 0.95; every round counts) against the supermask searches binw-slt and slt; "
            "seeds 0-2",
            dataset="digits",
            methods=("snn-imp", "slt", "binw-slt"),
            sparsities=SWEEP_SPARSITIES,
            seeds=(0, 1, 2),
            cell={**_SMOKE, "recipe.epochs": 5, "recipe.imp_rate": 0.25},
        ),
        Profile(
            "cpu",
            "ResNet-19 on real CIFAR-10 (6,000 of the subset's train images, 10 % of them held out "
            "for validation; all 1,000 test) at width 0.25, 32x32, 5 epochs, IMP 2 rounds; seeds "
            "0-2 for binw-slt, bnn-lt and snn (paired claims), 0 for the rest: about 2.5 h on 2 "
            "idle cores",
            dataset="cifar10",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            method_seeds={"binw-slt": (0, 1, 2), "bnn-lt": (0, 1, 2), "snn": (0, 1, 2)},
            cell={**_SMOKE, "recipe.epochs": 5, "data.limit_train": 6000},
        ),
        Profile(
            "cpu-vgg",
            CPU_VGG_WHY,
            dataset="cifar10",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            method_seeds={"binw-slt": (0, 1, 2, 3, 4), "bnn-lt": (0, 1, 2, 3, 4), "snn": (0, 1, 2)},
            cell={**_SMOKE, "model.arch": "vgg16", "model.width": CPU_VGG_WIDTH,
                  "recipe.epochs": CPU_VGG_EPOCHS},
        ),
        Profile(
            "width",
            WIDTH_WHY,
            dataset="cifar10",
            methods=("snn", "bnn-lt", "binw-slt"),
            sparsities=(0.5,),
            seeds=(0, 1, 2),
            widths=WIDTH_WIDTHS,
            cell={**_SMOKE, "model.arch": "vgg16", "recipe.epochs": WIDTH_EPOCHS},
        ),
        Profile(
            "paper",
            "full width, CIFAR-10 32x32, T=4, the papers' schedules (a GPU job), IMP 3 rounds. "
            "BatchNorm after ResNet-19's FC 512->256 (model.fc_bn): without it fc1's LIF layer "
            "(body.12) fires 0.0 at initialization at v_threshold 1.0 (the silent-fc1 trap, docs/design.md "
            "§2.5) and the net trains as if cut there; with it every spiking layer fires at least "
            "3 % on a CIFAR-10 batch (tests/test_protocol.py), at the papers' threshold 1.0",
            dataset="cifar10",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            cell={
                "model.width": 1.0, "model.timesteps": 4, "recipe.epochs": 200,
                "recipe.batch_size": 128, "recipe.lr": 0.1, "recipe.score_lr": 0.1,
                "model.tau": 2.0, "model.v_threshold": 1.0, "model.fc_bn": True,
                "model.learn_bn": False, "recipe.imp_rounds": 3, "recipe.rewind_epoch": 1,
                "recipe.val_fraction": 0.1,
            },
        ),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    return PROFILES[name]


def request_cell(profile: str = "smoke", *, config: str | Path | None = None, sets: list[str] | None = None,
                 options: dict[str, Any] | None = None) -> tuple[Cell, Profile]:
    """The base cell of a request, and its profile: the profile's cell, then the TOML file
    ``config``, then the ``--set KEY=VALUE`` texts ``sets``, then ``options`` (dotted key ->
    value; None = not given). A data set of event frames gives ``model.timesteps`` unless
    the request names it. Names are checked where they are resolved (:func:`~.methods.resolve`).
    """
    from . import plugins
    from .cell import parse_assignment, read_config_file

    prof = get_profile(profile)
    cell = prof.base()
    from_file = read_config_file(config) if config is not None else None
    assigned = dict(parse_assignment(t) for t in sets) if sets else None
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if from_file is not None:
        cell = cell.with_values(from_file)
    if assigned:
        cell = cell.with_values(assigned, parse=True)
    if given:
        cell = cell.with_values(given)
    frames_t = getattr(plugins.lookup("datasets", cell.data.dataset), "timesteps", None)
    named = set(given) | set(from_file or ()) | set(assigned or ())
    if frames_t and not named & {"model.timesteps", "timesteps"}:  # event frames: T comes from the data
        cell = cell.with_values({"model.timesteps": frames_t})
    return cell, prof
