"""The configuration of one benchmark cell; its canonical dict is hashed for resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import UsageError

__all__ = ["CellConfig"]


@dataclass(frozen=True)
class CellConfig:
    """One cell of the matrix: (arch, dataset, method, sparsity, seed, T, epochs) + recipe.

    ``normalized()`` zeroes what a method ignores (sparsity of dense methods, T and tau
    of ANNs), so equal cells hash equally.
    """

    arch: str = "resnet19"
    dataset: str = "digits"
    method: str = "binw-slt"
    sparsity: float = 0.5
    seed: int = 0
    timesteps: int | None = 4
    epochs: int = 10
    width: float = 0.25
    batch_size: int = 64
    lr: float = 0.1  # SGD (momentum 0.9, cosine) for trained weights
    weight_decay: float = 5e-4
    score_lr: float = 0.1  # Adam (cosine, no weight decay) for supermask scores
    tau: float | None = 2.0
    v_threshold: float = 1.0
    fc_bn: bool = True
    learn_bn: bool = False
    keep_first: bool = False
    keep_last: bool = False
    scope: str = "layer"
    sign_gradient: str = "bireal"
    imp_rounds: int = 2
    rewind_epoch: int = 1
    limit_train: int | None = None
    limit_test: int | None = None
    energy_model: str = "horowitz45"

    def validate(self) -> CellConfig:
        from ..methods import get_method
        from ..plugins import lookup
        from ..pruners.common import check_sparsity

        lookup("architectures", self.arch)
        lookup("datasets", self.dataset)
        lookup("energy_models", self.energy_model)
        get_method(self.method)
        check_sparsity(self.sparsity)
        for name in ("epochs", "batch_size", "imp_rounds"):
            value = getattr(self, name)
            if int(value) < (0 if name == "epochs" else 1):
                raise UsageError(f"{name} {value!r} must be {'>= 0' if name == 'epochs' else '>= 1'}")
        if self.timesteps is not None and int(self.timesteps) < 1:
            raise UsageError(f"timesteps {self.timesteps!r} must be >= 1")
        if not 0 < float(self.width) <= 4:
            raise UsageError(f"width {self.width!r} must be in (0, 4]")
        return self

    def normalized(self) -> CellConfig:
        from ..build import is_spiking
        from ..methods import get_method

        method = get_method(self.method)
        changes: dict = {}
        if not method.sparse:
            changes["sparsity"] = 0.0
        if method.search != "imp":
            changes.update(imp_rounds=1, rewind_epoch=0)
        if not is_spiking(method):
            changes.update(timesteps=None, tau=None)
        if method.search != "supermask":
            changes.update(score_lr=0.0, learn_bn=False, scope="layer")
        if method.neuron != "sign":
            changes["sign_gradient"] = ""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    def model_spec(self, bundle):
        """The :class:`~spikingjelly_lt.build.ModelSpec` of this cell on ``bundle``'s data."""
        from ..build import ModelSpec

        return ModelSpec(
            arch=self.arch,
            method=self.method,
            num_classes=bundle.num_classes,
            in_channels=bundle.in_channels,
            input_size=bundle.input_size,
            width=self.width,
            timesteps=self.timesteps or 1,
            sparsity=self.sparsity,
            tau=self.tau or 2.0,
            v_threshold=self.v_threshold,
            fc_bn=self.fc_bn,
            learn_bn=self.learn_bn,
            keep_first=self.keep_first,
            keep_last=self.keep_last,
            scope=self.scope,
            sign_gradient=self.sign_gradient or "bireal",
            seed=self.seed,
        )

    @classmethod
    def from_dict(cls, d: dict) -> CellConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
