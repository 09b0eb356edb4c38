"""Benchmark profiles: a data set, a size and a training recipe that trains every method.

Each profile records why its numbers are what they are; a result row stores the
profile name and the full cell config, so the recipe travels with every number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cell import Cell
from .errors import UnknownNameError
from .methods import DEFAULT_METHODS

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    dataset: str
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    cell: dict = field(default_factory=dict)  # cell fields, dotted keys (see spikingjelly_lt.cell)

    def base(self) -> Cell:
        """The profile's cell (data set and recipe), before files, --set and options."""
        return Cell().with_values({"data.dataset": self.dataset, **self.cell})

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "dataset": self.dataset,
                "methods": list(self.methods), "sparsities": list(self.sparsities), "seeds": list(self.seeds),
                "sets": dict(self.cell)}


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "smoke",
            "digits 8x8 at width 0.25: the whole default matrix in minutes on 2 CPU cores",
            dataset="digits",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            cell={
                "model.width": 0.25, "model.timesteps": 4, "recipe.epochs": 10,
                "recipe.batch_size": 64, "recipe.lr": 0.1, "recipe.score_lr": 0.1,
                "model.tau": 2.0, "model.v_threshold": 0.5, "model.fc_bn": True,
                "model.learn_bn": True, "recipe.imp_rounds": 1, "recipe.rewind_epoch": 1,
            },
        ),
        Profile(
            "cpu",
            "real CIFAR-10 (6,000 of the subset's train images, all 1,000 test) at width 0.25, "
            "32x32, 5 epochs: the default matrix in about 1-1.5 h on 2 idle cores",
            dataset="cifar10",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            cell={
                "model.width": 0.25, "model.timesteps": 4, "recipe.epochs": 5,
                "recipe.batch_size": 64, "recipe.lr": 0.1, "recipe.score_lr": 0.1,
                "model.tau": 2.0, "model.v_threshold": 0.5, "model.fc_bn": True,
                "model.learn_bn": True, "recipe.imp_rounds": 1, "recipe.rewind_epoch": 1,
                "data.limit_train": 6000,
            },
        ),
        Profile(
            "paper",
            "full width, CIFAR-10 32x32, T=4, the papers' schedules (a GPU job)",
            dataset="cifar10",
            methods=DEFAULT_METHODS,
            sparsities=(0.5,),
            seeds=(0,),
            cell={
                "model.width": 1.0, "model.timesteps": 4, "recipe.epochs": 200,
                "recipe.batch_size": 128, "recipe.lr": 0.1, "recipe.score_lr": 0.1,
                "model.tau": 2.0, "model.v_threshold": 1.0, "model.fc_bn": False,
                "model.learn_bn": False, "recipe.imp_rounds": 3, "recipe.rewind_epoch": 1,
            },
        ),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    return PROFILES[name]
