"""Compact tickets (issue 7, section 2): export -> load is bit-exact; bad files are UsageErrors."""

from __future__ import annotations

import json
import pytest
import torch

from spikingjelly_lt import ticket as tk
from spikingjelly_lt._sj import reset_net
from spikingjelly_lt.build import DataShape
from spikingjelly_lt.build import build_model as _build_model
from spikingjelly_lt.cell import Cell, flatten
from spikingjelly_lt.data import load_dataset, make_loader
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.methods import METHODS
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.pruners import magnitude
from spikingjelly_lt.pruners.common import effective_weight, prunable_layers
from spikingjelly_lt.training.trainer import evaluate, run_cell
from conftest import run_cli

TRAINED = ("binw-slt", "slt", "snn-imp")
# small enough to train in about a second; v_threshold 0.25 keeps the tiny spiking net
# firing, so the logits depend on the weights and the comparisons below mean something
CELL = dict(arch="resnet19", dataset="digits", width=0.125, epochs=1, timesteps=2, limit_train=256,
            batch_size=64, v_threshold=0.25, imp_rounds=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny nets: one thread is fastest, and far faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ModelSpec(**kw) -> tk.TicketSpec:  # noqa: N802 - reads like the spec it builds
    shape = {k: kw.pop(k) for k in ("num_classes", "in_channels", "input_size") if k in kw}
    return tk.TicketSpec(Cell().replace(**kw), DataShape(**shape))


def replace(spec: tk.TicketSpec, **kw) -> tk.TicketSpec:
    return tk.TicketSpec(spec.cell.replace(**kw), spec.shape)


def build_model(spec: tk.TicketSpec):
    return _build_model(resolve(spec.cell), spec.shape)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for method in TRAINED:
        paths[method] = root / f"{method}.pt"
        run_cell(Cell().replace(method=method, **CELL), checkpoint=paths[method])
    return paths


@pytest.fixture(scope="module")
def digits():
    bundle = load_dataset("digits")
    x, _ = next(iter(make_loader(bundle, "test", 64)))
    return bundle, x


def logits(model, x):
    with torch.no_grad():
        out = model(x)
    if getattr(model, "timesteps", None) is not None:
        reset_net(model)
    return out


def weights(model):
    return {n: effective_weight(m) for n, m in prunable_layers(model)}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_seed_regrows_frozen_weights_bit_exactly():
    spec = ModelSpec(arch="resnet19", method="binw-slt", width=0.125, input_size=8, in_channels=1, timesteps=2)
    a = build_model(spec)
    torch.manual_seed(123)
    torch.randn(1000)  # a disturbed global RNG must not matter
    b = build_model(spec)
    for (name, ma), (_, mb) in zip(prunable_layers(a), prunable_layers(b)):
        wa, wb = ma.parametrizations.weight.original, mb.parametrizations.weight.original
        assert torch.equal(wa.view(torch.int32), wb.view(torch.int32)), name


@pytest.mark.parametrize("store_signs", [False, True], ids=["seed", "signs"])
@pytest.mark.parametrize("method", TRAINED)
def test_checkpoint_round_trip_is_bit_exact(method, store_signs, checkpoints, digits, tmp_path):
    bundle, x = digits
    original, spec, cell = tk.model_from_checkpoint(checkpoints[method])
    out = tmp_path / "t.sjt"
    rng = torch.get_rng_state()
    written = tk.export_ticket(checkpoints[method], out, store_signs=store_signs)
    loaded = tk.load_ticket(out)
    assert torch.equal(torch.get_rng_state(), rng)  # export/load leave the caller's RNG alone
    assert written.header["cell"] == flatten(cell) and written.header["spec"] == spec.to_dict()
    assert written.header["from_seed"] == (not store_signs and method != "snn-imp")
    assert_same_weights(original, loaded)
    a, b = logits(original, x), logits(loaded, x)
    assert a.std(0).mean() > 0  # not a silent net: the logits depend on the input
    assert torch.equal(a, b)
    loader = make_loader(bundle, "test", 256)
    assert evaluate(loaded, loader, torch.device("cpu"))["top1"] == evaluate(original, loader, torch.device("cpu"))["top1"]
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training


def test_binw_slt_sizes(checkpoints, tmp_path):
    seed = tk.export_ticket(checkpoints["binw-slt"], tmp_path / "a.sjt").sizes()
    signs = tk.export_ticket(checkpoints["binw-slt"], tmp_path / "b.sjt", store_signs=True).sizes()
    numel = seed["weights"]
    assert seed["signs"] == 0 and seed["weights_fp32"] == 0
    assert seed["masks"] == sum((e["numel"] + 7) // 8 for e in tk.read_ticket(tmp_path / "a.sjt").header["layers"])
    assert numel // 8 <= seed["masks"] <= numel // 8 + 8 * 30
    assert 0 < signs["signs"] <= seed["masks"] // 2 + 30  # one bit per kept weight (50% kept)
    assert seed["file"] == (tmp_path / "a.sjt").stat().st_size < signs["file"]


def test_signs_ticket_does_not_need_the_seed(checkpoints, digits, tmp_path):
    _, x = digits
    original, _, _ = tk.model_from_checkpoint(checkpoints["binw-slt"])
    t = tk.export_ticket(checkpoints["binw-slt"], tmp_path / "t.sjt", store_signs=True)
    header = {**t.header, "spec": {**t.header["spec"], "seed": 7}}  # another seed regrows other weights
    (tmp_path / "u.sjt").write_bytes(tk._serialize(header, t.payload))
    assert torch.equal(logits(tk.load_ticket(tmp_path / "u.sjt"), x), logits(original, x))


def test_seed_ticket_refuses_weights_that_do_not_regrow(checkpoints, tmp_path):
    t = tk.export_ticket(checkpoints["slt"], tmp_path / "t.sjt")
    header = {**t.header, "seed_weights_sha256": "0" * 64}  # e.g. another torch's RNG
    (tmp_path / "u.sjt").write_bytes(tk._serialize(header, t.payload))
    with pytest.raises(UsageError, match="differ from the exported ones.*--store-signs"):
        tk.load_ticket(tmp_path / "u.sjt")


def _methods_specs() -> list:
    tiny = dict(arch="resnet19", width=0.0625, input_size=8, in_channels=1, timesteps=2, fc_bn=True)
    return [pytest.param(ModelSpec(method=name, **tiny), id=name) for name in METHODS] + [
        pytest.param(ModelSpec(method="binw-slt", scope="global", sparsity=0.8, **tiny), id="binw-slt-global"),
        pytest.param(ModelSpec(method="binw-slt", keep_first=True, keep_last=True, **tiny), id="binw-slt-keep"),
        pytest.param(ModelSpec(method="slt", **{**tiny, "arch": "vgg16"}), id="vgg16-slt"),
    ]


@pytest.mark.parametrize("spec", _methods_specs())
def test_every_method_exports(spec, tmp_path):
    model = build_model(spec)
    if spec.method.endswith("imp"):
        magnitude.prune_remaining(model, 0.5)
    x = torch.randn(4, spec.in_channels, spec.input_size, spec.input_size)
    for store_signs in (False, True):
        tk.export_ticket(model, tmp_path / "t.sjt", spec=spec, store_signs=store_signs)
        loaded = tk.load_ticket(tmp_path / "t.sjt")
        assert_same_weights(model, loaded)
        assert torch.equal(logits(model.eval(), x), logits(loaded, x))


def test_kept_weight_of_exactly_zero(tmp_path):
    spec = ModelSpec(arch="resnet19", method="binw-slt", width=0.0625, input_size=8, in_channels=1, timesteps=2)
    model = build_model(spec)
    _, conv = prunable_layers(model)[1]
    mask = conv.parametrizations.weight[0].mask()
    with torch.no_grad():
        conv.parametrizations.weight.original.view(-1)[int(mask.view(-1).nonzero()[0])] = 0.0
    assert int((effective_weight(conv) != 0).sum()) == int(mask.sum()) - 1
    # the frozen weights of that layer no longer regrow from the seed: detected, and that layer
    # alone stores its sign bits (the others still regrow), exactly
    t = tk.export_ticket(model, tmp_path / "t.sjt", spec=spec)
    sources = {e["name"]: e["source"] for e in t.header["layers"]}
    assert sources[prunable_layers(model)[1][0]] == "signs"
    assert sum(v == "seed" for v in sources.values()) == len(sources) - 1
    assert_same_weights(model, tk.load_ticket(tmp_path / "t.sjt"))
    tk.export_ticket(model, tmp_path / "t.sjt", spec=spec, store_signs=True)
    assert_same_weights(model, tk.load_ticket(tmp_path / "t.sjt"))
    # a BNN latent weight of exactly 0 runs as 0
    spec = replace(spec, method="binw-snn")
    model = build_model(spec)
    _, conv = prunable_layers(model)[2]
    with torch.no_grad():
        conv.parametrizations.weight.original.view(-1)[3] = 0.0
    tk.export_ticket(model, tmp_path / "t.sjt", spec=spec)
    assert_same_weights(model, tk.load_ticket(tmp_path / "t.sjt"))


def test_model_needs_its_spec(tmp_path):
    with pytest.raises(UsageError, match="needs spec=TicketSpec"):
        tk.export_ticket(torch.nn.Linear(2, 2), tmp_path / "t.sjt")
    spec = ModelSpec(arch="resnet19", method="slt", width=0.0625, input_size=8, in_channels=1, timesteps=2)
    with pytest.raises(UsageError, match="does not match"):
        tk.export_ticket(build_model(spec), tmp_path / "t.sjt", spec=replace(spec, width=0.125))


@pytest.fixture(scope="module")
def ticket_bytes(checkpoints, tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.sjt"
    tk.export_ticket(checkpoints["binw-slt"], path)
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0, 5, 30, 500, -1])
def test_truncated_file(keep, ticket_bytes, tmp_path):
    path = tmp_path / "t.sjt"
    path.write_bytes(ticket_bytes[:keep])
    with pytest.raises(UsageError, match="truncated|bad magic") as err:
        tk.load_ticket(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("where", ["header", "payload", "checksum", "last-payload-byte"])
def test_flipped_byte(where, ticket_bytes, tmp_path):
    data = bytearray(ticket_bytes)
    head_len = int.from_bytes(data[12:16], "little")
    pos = {"header": 24 + head_len // 2, "payload": 24 + head_len + 10,
           "checksum": len(data) - 5, "last-payload-byte": len(data) - 33}[where]
    data[pos] ^= 0x01
    path = tmp_path / "t.sjt"
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="checksum mismatch"):
        tk.read_ticket(path)


def test_framing_damage_is_a_usage_error(ticket_bytes, tmp_path):
    path = tmp_path / "t.sjt"
    for pos in range(24):  # every byte of magic, version, flags and lengths
        data = bytearray(ticket_bytes)
        data[pos] ^= 0x10
        path.write_bytes(bytes(data))
        with pytest.raises(UsageError):
            tk.load_ticket(path)
    path.write_bytes(ticket_bytes + b"\0")
    with pytest.raises(UsageError, match="after the checksum"):
        tk.load_ticket(path)
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(UsageError, match="not a spikingjelly-lt ticket"):
        tk.load_ticket(path)
    with pytest.raises(UsageError, match="does not exist"):
        tk.load_ticket(tmp_path / "missing.sjt")


def test_version_mismatch(ticket_bytes, tmp_path):
    t = tk._parse(ticket_bytes, "t")
    path = tmp_path / "v2.sjt"
    path.write_bytes(tk._serialize(t.header, t.payload, version=tk.FORMAT_VERSION + 1))
    with pytest.raises(UsageError, match=f"version {tk.FORMAT_VERSION + 1}; this spikingjelly-lt reads version {tk.FORMAT_VERSION}"):
        tk.load_ticket(path)


# -- the CLI ---------------------------------------------------------------------------




def test_cli_export_info_load(checkpoints, digits, tmp_path, capsys, monkeypatch):
    bundle, _ = digits
    out = tmp_path / "t.sjt"
    code, stdout, err = run_cli(["ticket", "export", str(checkpoints["binw-slt"]), "-o", str(out), "--store-signs", "--json"], capsys, monkeypatch)
    assert code == 0, err
    exported = json.loads(stdout)
    assert exported["method"] == "binw-slt" and exported["from_seed"] is False
    assert exported["sizes"]["file"] == out.stat().st_size

    code, stdout, err = run_cli(["ticket", "info", str(out), "--json"], capsys, monkeypatch)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["header"]["arch"] == "resnet19" and info["header"]["cell"]["dataset"] == "digits"
    assert len(info["header"]["layers"]) == len(prunable_layers(tk.load_ticket(out)))
    code, stdout, _ = run_cli(["ticket", "info", str(out), "--layers"], capsys, monkeypatch)
    assert code == 0 and "supermask-binary" in stdout and "bits per weight" in stdout

    code, stdout, err = run_cli(["ticket", "load", str(out), "--json"], capsys, monkeypatch)
    assert code == 0, err
    loaded = json.loads(stdout)
    original, _, _ = tk.model_from_checkpoint(checkpoints["binw-slt"])
    expected = evaluate(original, make_loader(bundle, "test", 256), torch.device("cpu"))["top1"]
    assert loaded["top1"] == expected and loaded["images"] == 360 and loaded["dataset"] == "digits"
    code, stdout, _ = run_cli(["ticket", "load", str(out), "--dataset", "digits", "--limit-test", "100"], capsys, monkeypatch)
    assert code == 0 and "top-1 %" in stdout


def test_cli_errors_are_one_red_line(checkpoints, ticket_bytes, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.sjt"
    bad.write_bytes(ticket_bytes[:-100])
    for args in (["ticket", "load", str(bad)], ["ticket", "info", str(bad)],
                 ["ticket", "export", str(tmp_path / "nope.pt"), "-o", str(bad)],
                 ["ticket", "load", str(checkpoints["slt"])]):
        code, stdout, err = run_cli(args, capsys, monkeypatch)
        assert code == 2, (args, err)
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and stdout == ""
    good = tmp_path / "good.sjt"
    good.write_bytes(ticket_bytes)
    code, _, err = run_cli(["ticket", "load", str(good), "--dataset", "cifar10"], capsys, monkeypatch)
    assert code == 2 and "error:" in err


def test_a_built_model_exports_without_a_spec(tmp_path):
    """export_ticket(model, path): a model from build_model knows the cell and shape that rebuild it."""
    from spikingjelly_lt.build import DataShape, build_model as build_cell
    from spikingjelly_lt.cell import Cell

    cell = Cell(method="binw-slt").with_values({"model.width": 0.0625, "model.timesteps": 2, "seed": 3})
    model = build_cell(cell, DataShape(10, 1, 8))
    t = tk.export_ticket(model, tmp_path / "b.sjlt")
    assert t.spec().seed == 3 and {e["source"] for e in t.header["layers"]} == {"seed"}
    assert_same_weights(model, tk.load_ticket(tmp_path / "b.sjlt"))
