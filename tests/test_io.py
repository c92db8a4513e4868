"""Tests for fnn.io: round trips, atomic writes, the registry, and hostile or broken files."""

from __future__ import annotations

import io as _stdio
import json
import math
import os
import pathlib
import tempfile
import zipfile

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from fnn import io as fio
from fnn.io import encode, registry
from fnn.layers._base import Layer, param_field
from fnn.testing import networks

# ---------------------------------------------------------------------------
# Helpers


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Registrations made by one test do not leak into another."""
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))


def same(a, b) -> bool:
    """Exact equality of two saved values: types, dtypes, shapes, bits (NaN equals NaN)."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and (a == b or (a != a and b != b))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return a is b or a == b


def round_trip(value, **kw):
    with tempfile.TemporaryDirectory() as d:
        path = fio.save(os.path.join(d, "t"), value, **kw)
        return fio.load(path)


def entries_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def npy_bytes(array, allow_pickle=False) -> bytes:
    buf = _stdio.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def header_of(entries) -> dict:
    raw = np.lib.format.read_array(_stdio.BytesIO(entries["fnn-header.npy"]))
    return json.loads(raw.tobytes().decode())


def write_entries(path, entries) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def rewrite_header(path, change) -> None:
    """Rewrite the file at ``path`` with ``change(header_dict)`` applied."""
    entries = entries_of(path)
    header = header_of(entries)
    change(header)
    text = json.dumps(header).encode()
    entries["fnn-header.npy"] = npy_bytes(np.frombuffer(text, np.uint8))
    write_entries(path, entries)


def small_net(seed=0, width=3):
    return fnn.init([fnn.Dense(width), fnn.Tanh(), fnn.Dense(2)], (4,), key=seed)


@fio.register
@attrs.frozen(eq=False)
class Scaled(Layer):
    """A user layer: y = s * x with a trainable scalar s (registered under its own name)."""

    factor: float = attrs.field(default=1.0)
    s: np.ndarray | None = param_field()

    def init(self, key, in_shape, dtype):
        return attrs.evolve(self, s=np.full((), self.factor, dtype)), in_shape

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        def pullback(dy):
            return self.zero_grad_like(s=np.sum(dy * x)), (dy * self.s if need_dx else None)

        return x * self.s, pullback


@attrs.frozen(eq=False)
class Unregistered(Layer):
    """A user layer nobody registered."""


@fio.register(name="tests.constant_half")
def constant_half(key, shape, dtype):
    """A registered user initialiser."""
    return np.full(shape, 0.5, dtype)


@fio.register
@attrs.frozen
class MomentumState:
    """Stands in for an optimizer state: a step counter and a velocity tree."""

    count: int
    velocity: object


# ---------------------------------------------------------------------------
# Round trips


@given(networks())
def test_network_round_trip_is_exact(net):
    """Any generated network comes back with the same classes, configs, dtypes and bits."""
    back = round_trip(net)
    assert same(back, net)
    assert back.layers[0].w_init is net.layers[0].w_init


@given(networks(), st.booleans())
def test_loaded_network_computes_the_same(net, compress):
    """A loaded network's forward pass equals the original's, bit for bit (compressed or not)."""
    back = round_trip(net, compress=compress)
    x = np.linspace(-1, 1, 3 * net.input_shape[0]).reshape(3, -1)
    np.testing.assert_array_equal(fnn.forward(back, x), fnn.forward(net, x))


_dtypes = st.sampled_from(["<f4", "<f8", ">f8", "<i8", "<u1", "|b1", "<c16", "<i2"])
_arrays = st.builds(
    lambda dt, shape: (dt, shape), _dtypes, hnp.array_shapes(min_dims=0, max_side=4)
).flatmap(lambda ds: hnp.arrays(np.dtype(ds[0]), ds[1]))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        [np.dtype("f4"), np.dtype(">i8"), np.float32(1.5), np.int64(-3), np.bool_(True)]
    ),
    st.sampled_from([fnn.initializers.he_normal, constant_half, fnn.random.key(3)]),
)
_trees = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-5, 5)), kids, max_size=3),
        st.builds(MomentumState, st.integers(0, 10), kids),
    ),
    max_leaves=12,
)


@given(_trees)
def test_nested_containers_round_trip(value):
    """Nested dicts, lists, tuples, attrs states, scalars, dtypes, keys and arrays of every
    numeric dtype (including big-endian, complex, bool, 0-d and empty) come back identical."""
    assert same(round_trip(value), value)


def test_checkpoint_round_trip_and_read_only_arrays():
    """A training checkpoint keeps every part; every loaded array is read-only."""
    net = small_net()
    ckpt = {
        "net": net,
        "opt_state": MomentumState(7, fnn.tree.zeros_like(net)),
        "epoch": 3,
        "key": fnn.random.fold_in(fnn.random.key(1), 4),
        "history": {"loss": [1.0, 0.5, float("nan")]},
    }
    back = round_trip(ckpt)
    assert same(back, ckpt)
    assert back["key"] == ckpt["key"]
    assert all(not leaf.flags.writeable for leaf in fnn.tree.leaves(back))


def test_custom_layer_and_initialiser_round_trip():
    """Registered user layers and initialisers save and load by their registered names."""
    net = fnn.init([fnn.Dense(3, w_init=constant_half), Scaled(2.0)], (2,), key=0)
    back = round_trip(net)
    assert isinstance(back.layers[1], Scaled) and back.layers[1].factor == 2.0
    assert back.layers[0].w_init is constant_half
    assert same(back, net)


def test_constructor_runs_on_load(tmp_path):
    """attrs instances are rebuilt through their constructors, so validators see loaded values."""
    path = fio.save(tmp_path / "m", small_net())

    def break_units(h):
        h["tree"]["fields"]["layers"]["items"][0]["fields"]["units"] = 0

    rewrite_header(path, break_units)
    with pytest.raises(ValueError, match=r"could not rebuild Dense at layers\[0\].*positive int"):
        fio.load(path)


def test_save_leaves_the_tree_untouched(tmp_path):
    """Saving does not change the tree or the flags of its arrays."""
    a = np.arange(4.0)
    value = {"a": a, "t": (1, "x")}
    fio.save(tmp_path / "v", value)
    assert a.flags.writeable and a.tolist() == [0.0, 1.0, 2.0, 3.0] and value["t"] == (1, "x")


def test_file_is_a_plain_npz(tmp_path):
    """np.load(allow_pickle=False) reads the file: arrays by tree path plus the JSON header."""
    net = small_net()
    path = fio.save(tmp_path / "m", net)
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["arrays/layers[0].w"], net.layers[0].w)
        header = json.loads(npz["fnn-header"].tobytes().decode())
    assert header["format"] == "fnn" and header["format_version"] == fio.FORMAT_VERSION
    assert header["fnn_version"] == fnn.__version__
    assert header["tree"]["class"] == "fnn.network.Network"


# ---------------------------------------------------------------------------
# File names and atomic writes


def test_npz_suffix_rule(tmp_path):
    """save("model") writes model.npz and load("model") reads it; an .npz path is kept."""
    p1 = fio.save(tmp_path / "model", {"a": 1})
    p2 = fio.save(str(tmp_path / "other.npz"), {"b": 2})
    assert p1 == tmp_path / "model.npz" and p2 == tmp_path / "other.npz"
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "other.npz"]
    assert fio.load(tmp_path / "model") == {"a": 1}
    assert fio.load(tmp_path / "model.npz") == {"a": 1}


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    """An error mid-write leaves the old file intact and no temp file behind."""
    path = fio.save(tmp_path / "m", {"v": 1})
    before = path.read_bytes()

    def failing(f, entries, compress):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(encode, "_write_npz", failing)
    with pytest.raises(OSError, match="disk full"):
        fio.save(tmp_path / "m", {"v": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_unsavable_tree_writes_nothing(tmp_path):
    """A tree that cannot be encoded fails before any file or temp file is created."""
    with pytest.raises(TypeError, match=r"cannot save a set at \['s'\]"):
        fio.save(tmp_path / "m", {"s": {1, 2}})
    assert os.listdir(tmp_path) == []


def test_missing_directory(tmp_path):
    """Saving into a directory that does not exist is refused with the directory named."""
    with pytest.raises(
        FileNotFoundError, match=r"fnn.io.save: the directory .*nope.* does not exist"
    ):
        fio.save(tmp_path / "nope" / "m", {"a": 1})


def test_missing_file(tmp_path):
    """Loading a file that does not exist names the path tried (with the .npz rule)."""
    with pytest.raises(FileNotFoundError, match=r"no such file .*ghost\.npz.*save adds \.npz"):
        fio.load(tmp_path / "ghost")


# ---------------------------------------------------------------------------
# Saving what cannot be saved


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (
            {"o": np.array([object()], dtype=object)},
            TypeError,
            r"dtype object at \['o'\].*no object arrays",
        ),
        ({"l": lambda: 0}, TypeError, r"function .*<lambda>.* at \['l'\]: it is not registered"),
        (
            Unregistered(),
            TypeError,
            r"class .*Unregistered.* at <root>: it is not registered; call fnn.io.register",
        ),
        ({(1, 2): 3}, TypeError, r"dict key \(1, 2\) \(tuple\) at <root>; dict keys must be str or int"),
        ({True: 3}, TypeError, r"dict key True"),
        ([np.complex64(1j)], TypeError, r"complex64 scalar .* at \[0\]; store it as a 0-d array"),
        ({"p": pathlib.Path("x")}, TypeError, r"cannot save a PosixPath|cannot save a WindowsPath"),
    ],
)
def test_save_errors(tmp_path, value, error, match):
    """Values fnn files cannot hold are refused with their path and the fix."""
    with pytest.raises(error, match=match):
        fio.save(tmp_path / "m", value)


def test_path_type_error():
    """A path that is neither str nor PathLike is a TypeError."""
    with pytest.raises(TypeError, match=r"fnn.io.save: path must be a str or os.PathLike, got int"):
        fio.save(3, {})


# ---------------------------------------------------------------------------
# The registry


def test_unknown_class_on_load_says_how_to_register(tmp_path, monkeypatch):
    """A file naming a class this process has not registered explains how to register it."""
    path = fio.save(tmp_path / "m", fnn.init([Scaled()], (2,), key=0))
    monkeypatch.setattr(registry, "_BY_NAME", {})
    monkeypatch.setattr(registry, "_NAMES", {})
    with pytest.raises(
        ValueError,
        match=r"m\.npz: unknown class 'tests\.test_io\.Scaled' at layers\[0\].*fnn\.io\.register",
    ):
        fio.load(path)


def test_register_decorator_forms_and_errors():
    """register works as a call and as a decorator; names mean one thing."""

    def f(key, shape, dtype):
        return np.zeros(shape, dtype)

    def g(key, shape, dtype):
        return np.zeros(shape, dtype)

    assert fio.register(f, name="tests.f") is f
    assert fio.register(f, name="tests.f") is f  # idempotent
    assert fio.register(name="tests.g")(g) is g
    with pytest.raises(ValueError, match=r"the name 'tests\.f' already belongs to"):
        fio.register(g, name="tests.f")
    with pytest.raises(TypeError, match=r"expected a class or a function, got int"):
        fio.register(3)
    with pytest.raises(ValueError, match=r"has no importable name"):
        fio.register(f)  # a local function: <locals> in its qualname
    with pytest.raises(ValueError, match=r"non-empty"):
        fio.register(f, name=" ")
    with pytest.raises(TypeError, match=r"name must be a str"):
        fio.register(f, name=3)


def test_builtin_names_need_no_registration():
    """fnn's classes and functions are found by module.qualname, including modules loaded later."""
    names = registry.Names()
    assert names.name_of(fnn.Dense) == "fnn.layers.dense.Dense"
    assert names.name_of(fnn.random.Key) == "fnn.random.Key"
    assert names.resolve("fnn.layers.initializers.glorot_uniform") is fnn.initializers.glorot_uniform
    assert names.resolve("fnn.Dense") is None  # re-exports are not names; the defining module is
    assert names.resolve("fnn.no_such_module.Thing") is None
    assert names.resolve("os.system") is None  # nothing outside fnn without registration


# ---------------------------------------------------------------------------
# Broken and hostile files


@pytest.fixture
def saved(tmp_path):
    net = small_net()
    return fio.save(tmp_path / "m", {"net": net, "epoch": 3}), {"net": net, "epoch": 3}


@given(cut=st.floats(0.0, 0.999))
def test_truncated_file(cut):
    """Any truncation is a ValueError naming the file, never garbage or another exception."""
    with tempfile.TemporaryDirectory() as d:
        path = fio.save(os.path.join(d, "m"), {"net": small_net(), "epoch": 3})
        data = path.read_bytes()
        path.write_bytes(data[: int(cut * len(data))])
        with pytest.raises(ValueError, match=r"fnn\.io\.load: .*m\.npz: "):
            fio.load(path)


@given(position=st.floats(0.0, 0.9999), flip=st.integers(1, 255), compress=st.booleans())
def test_flipped_byte(position, flip, compress):
    """A corrupted byte anywhere gives a ValueError naming the file, or (where the byte is
    not meaningful, e.g. a timestamp) the unchanged tree: never a silently different one."""
    original = {"net": small_net(), "epoch": 3}
    with tempfile.TemporaryDirectory() as d:
        path = fio.save(os.path.join(d, "m"), original, compress=compress)
        data = bytearray(path.read_bytes())
        data[int(position * len(data))] ^= flip
        path.write_bytes(bytes(data))
        try:
            back = fio.load(path)
        except ValueError as err:
            assert "m.npz" in str(err)
        else:
            assert same(back, original)


def test_not_a_zip(tmp_path):
    """A file that is not an npz archive is a ValueError naming it."""
    path = tmp_path / "m.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"m\.npz: the file is truncated or corrupted"):
        fio.load(path)


def test_plain_npz_is_not_an_fnn_file(tmp_path):
    """An npz written by np.savez has no header; the error says how to read it instead."""
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.zeros(2))
    with pytest.raises(ValueError, match=r"no fnn header.*np\.load"):
        fio.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda h: h.update(format_version=99),
            r"file-format version 99 .*reads versions up to 1; upgrade fnn",
        ),
        (lambda h: h.update(format_version="1"), r"invalid format version '1'"),
        (lambda h: h.update(format="keras"), r"not an fnn file"),
        (lambda h: h.pop("tree"), r"the header has no 'tree'"),
        (lambda h: h["tree"]["items"][1].__setitem__(1, {"t": "zzz"}), r"unknown node type 'zzz'"),
        (
            lambda h: h["tree"]["items"][1].__setitem__(1, [1, 2]),
            r"malformed header at \['epoch'\]",
        ),
        (
            lambda h: h["tree"]["items"][1].__setitem__(1, {"t": "ref", "name": "os.system"}),
            r"unknown function 'os\.system'",
        ),
        (
            lambda h: h["tree"]["items"][1].__setitem__(
                1, {"t": "namedtuple", "class": "fnn.io.encode.save", "items": []}
            ),
            r"not a namedtuple class",
        ),
        (
            lambda h: h["tree"]["items"][1].__setitem__(
                1, {"t": "attrs", "class": "fnn.io.encode.save", "fields": {}}
            ),
            r"not an attrs class",
        ),
        (
            lambda h: h["tree"]["items"][1].__setitem__(1, {"t": "dtype", "value": "O"}),
            r"dtype object .* not allowed",
        ),
        (
            lambda h: h["tree"]["items"][1].__setitem__(1, {"t": "float", "value": "1e999"}),
            r"malformed float",
        ),
        (
            lambda h: h["tree"]["items"][0][1]["fields"].update(extra=1),
            r"Network at \['net'\] has no fields \['extra'\]",
        ),
        (
            lambda h: h["tree"]["items"][0][1]["fields"]["layers"]["items"][0]["fields"][
                "w"
            ].update(shape=[3, 4]),
            r"holds float32 \(4, 3\) but the header declares float32 \(3, 4\)",
        ),
        (
            lambda h: h["tree"]["items"][0][1]["fields"]["layers"]["items"][0]["fields"][
                "w"
            ].update(name="arrays/x"),
            r"array entry 'arrays/x' is missing",
        ),
        (
            lambda h: h["tree"]["items"][0][1]["fields"]["layers"]["items"][0]["fields"][
                "b"
            ].update(name="arrays/['net'].layers[0].w"),
            r"referenced twice",
        ),
    ],
)
def test_bad_headers(saved, change, match):
    """Wrong format, newer versions and malformed or lying headers are ValueErrors naming the file."""
    path, _ = saved
    rewrite_header(path, change)
    with pytest.raises(ValueError, match=r"fnn\.io\.load: .*m\.npz: .*" + match):
        fio.load(path)


def test_unexpected_entry(saved):
    """An entry the header does not describe is refused."""
    path, _ = saved
    entries = entries_of(path)
    entries["arrays/sneaky.npy"] = npy_bytes(np.zeros(2))
    write_entries(path, entries)
    with pytest.raises(ValueError, match=r"unexpected entries \['arrays/sneaky\.npy'\]"):
        fio.load(path)


class _Payload:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "executed"))


@pytest.mark.parametrize("where", ["array", "header"])
def test_pickle_payload_never_executes(tmp_path, saved, where):
    """An object array carrying a pickle (in an array entry or as the header) is refused
    before it is read: the payload's side effect never happens."""
    path, _ = saved
    marker = tmp_path / "marker"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    payload = npy_bytes(evil, allow_pickle=True)
    # The payload is live: unpickling it really would run code.
    np.lib.format.read_array(_stdio.BytesIO(payload), allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    entries = entries_of(path)
    target = "arrays/['net'].layers[0].w.npy" if where == "array" else "fnn-header.npy"
    entries[target] = payload
    write_entries(path, entries)
    with pytest.raises(ValueError, match=r"dtype object; object arrays are refused"):
        fio.load(path)
    assert not marker.exists()


def test_lying_entry_size(saved):
    """An entry whose byte count disagrees with its .npy shape is refused before reading it."""
    path, _ = saved
    entries = entries_of(path)
    name = "arrays/['net'].layers[0].w.npy"
    entries[name] = entries[name] + b"\x00" * 8
    write_entries(path, entries)
    with pytest.raises(ValueError, match=r"has \d+ bytes, its shape needs \d+"):
        fio.load(path)


# ---------------------------------------------------------------------------
# load(like=...)


def test_like_accepts_matching_tree(saved):
    """A tree of the same structure, shapes and dtypes is accepted as `like`."""
    path, original = saved
    like = {"net": small_net(seed=5), "epoch": 0}
    assert same(fio.load(path, like=like), original)


@pytest.mark.parametrize(
    ("like", "match"),
    [
        (
            {"net": small_net(width=5), "epoch": 0},
            r"does not match `like`: tree structures differ at \['net'\]\.layers\[0\]\.w: shape \(4, 5\) vs shape \(4, 3\)",
        ),
        ({"net": small_net()}, r"does not match `like`: tree structures differ at <root>"),
        (
            {
                "net": fnn.init(
                    [fnn.Dense(3), fnn.Tanh(), fnn.Dense(2)], (4,), key=0, dtype=np.float64
                ),
                "epoch": 0,
            },
            r"does not match `like` at \['net'\]\.layers\[0\]\.w: dtype float64 expected, the file has float32",
        ),
    ],
)
def test_like_mismatch(saved, like, match):
    """A `like` tree that differs gives a ValueError naming the first differing path."""
    path, _ = saved
    with pytest.raises(ValueError, match=match):
        fio.load(path, like=like)


def test_optimizer_state_checkpoint_round_trip(tmp_path):
    """Real optimizer states (and the optimizer value itself) from fnn.optim save and load exactly."""
    optim = pytest.importorskip("fnn.optim")
    net = small_net()
    x, y = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4), np.zeros((2, 2), np.float32)
    for opt in (optim.sgd(0.1, momentum=0.9), optim.adam(1e-3)):
        state = opt.init(net)
        net2, state2 = opt.update(fnn.grad(net, x, y, fnn.losses.mse), state, net)
        ckpt = {"net": net2, "opt_state": state2, "optimizer": opt, "epoch": 1}
        back = fio.load(fio.save(tmp_path / "ckpt", ckpt), like=ckpt)
        assert same(back["opt_state"], state2) and same(back["net"], net2)
        net3, state3 = back["optimizer"].update(
            fnn.grad(net2, x, y, fnn.losses.mse), back["opt_state"], back["net"]
        )
        want = opt.update(fnn.grad(net2, x, y, fnn.losses.mse), state2, net2)
        assert same((net3, state3), want)  # resuming from the file equals never stopping


@pytest.mark.parametrize(
    "names", [("Conv2D", "MaxPool2D"), ("BatchNorm",), ("Dropout",), ("LayerNorm",)]
)
def test_other_layer_families_round_trip(tmp_path, names):
    """Layers from fnn's other families (conv, pooling, norm, dropout) need no registration."""
    layer_classes = [getattr(fnn.layers, n, None) for n in names]
    if None in layer_classes:
        pytest.skip(f"fnn.layers has no {names}")
    built = {"Conv2D": lambda c: c(2, 3), "MaxPool2D": lambda c: c(2), "Dropout": lambda c: c(0.5)}
    layers = [built.get(n, lambda c: c())(c) for n, c in zip(names, layer_classes, strict=True)]
    shape = (6, 6, 1) if "Conv2D" in names else (5,)
    net = fnn.init([*layers, fnn.Flatten(), fnn.Dense(2)], shape, key=0)
    back = fio.load(fio.save(tmp_path / "m", net), like=net)
    assert same(back, net)
