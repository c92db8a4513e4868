"""Tests for fnn.io.registry: which names a file may use, and that resolving one never imports."""

from __future__ import annotations

import json
import sys
import types

import attrs
import numpy as np
import pytest

import fnn
from fnn import io as fio
from fnn.io import registry
from fnn.io.legacy import RETIRED_IN_0_2, V0_1_0_NAMES


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Registrations made by one test do not leak into another."""
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))


def file_naming(path, node):
    """An fnn file (written by hand) whose whole tree is the JSON ``node``."""
    header = {"format": "fnn", "format_version": 1, "fnn_version": "x", "tree": node}
    raw = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **{"fnn-header": raw})
    return path


def fake_module(monkeypatch, name, **namespace):
    """Put a module ``name`` into sys.modules for the test (as if imported)."""
    module = types.ModuleType(name)
    for k, v in namespace.items():
        setattr(module, k, v)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_a_new_public_module_is_covered_without_registration(tmp_path, monkeypatch):
    """A class exported in the __all__ of a public fnn module imported later (an optional
    extra such as fnn.distributed) saves and loads with no registration, under its
    module.qualname."""

    @attrs.frozen
    class Widget:
        size: int

    Widget.__module__, Widget.__qualname__ = "fnn.fakeextra", "Widget"
    fake_module(monkeypatch, "fnn.fakeextra", Widget=Widget, __all__=["Widget"])
    back = fio.load(fio.save(tmp_path / "w", {"w": Widget(3)}))
    assert type(back["w"]) is Widget and back["w"].size == 3
    assert registry.Names().name_of(Widget) == "fnn.fakeextra.Widget"


def test_an_unexported_fnn_class_is_neither_saved_nor_loaded(tmp_path, monkeypatch):
    """A class defined in a public fnn module but not in its __all__ is refused by save
    (with the fix) and its name is refused by load: save never writes what load refuses."""

    @attrs.frozen
    class Hidden:
        size: int

    Hidden.__module__, Hidden.__qualname__ = "fnn.fakeextra", "Hidden"
    fake_module(monkeypatch, "fnn.fakeextra", Hidden=Hidden, __all__=[])
    with pytest.raises(TypeError, match=r"Hidden.* at \['h'\]: it is not registered"):
        fio.save(tmp_path / "h", {"h": Hidden(1)})
    path = file_naming(tmp_path / "f.npz", {"t": "attrs", "class": "fnn.fakeextra.Hidden", "fields": {}})
    with pytest.raises(ValueError, match=r"unknown class 'fnn\.fakeextra\.Hidden'"):
        fio.load(path)


def test_a_lazy_module_getattr_is_never_triggered(tmp_path, monkeypatch):
    """A public module whose __all__ lists a name it would import lazily (module
    __getattr__) is read with vars(): naming that object in a file neither calls the
    hook (which could import an optional module) nor resolves."""
    calls = []

    def lazy(name):
        calls.append(name)
        raise AttributeError(name)

    fake_module(monkeypatch, "fnn.fakelazy", __getattr__=lazy, __all__=["Thing"])
    path = file_naming(tmp_path / "f.npz", {"t": "attrs", "class": "fnn.fakelazy.Thing", "fields": {}})
    with pytest.raises(ValueError, match=r"unknown class 'fnn\.fakelazy\.Thing'"):
        fio.load(path)
    fio.save(tmp_path / "s", {"a": 1})
    assert calls == []


def test_a_private_module_exports_nothing(tmp_path, monkeypatch):
    """Modules with a part starting with '_' are not public: their __all__ allows nothing."""

    def helper(key, shape, dtype):
        return np.zeros(shape, dtype)

    helper.__module__, helper.__qualname__ = "fnn._fakeprivate", "helper"
    fake_module(monkeypatch, "fnn._fakeprivate", helper=helper, __all__=["helper"])
    assert registry.Names().name_of(helper) is None
    path = file_naming(tmp_path / "f.npz", {"t": "ref", "name": "fnn._fakeprivate.helper"})
    with pytest.raises(ValueError, match=r"unknown function 'fnn\._fakeprivate\.helper'"):
        fio.load(path)


def test_exported_loss_objects_round_trip_by_their_public_name(tmp_path):
    """A loss object exported by fnn.losses (a callable instance, not a function) is written
    by its public name and comes back as the very same object."""
    tree = {"loss": fnn.losses.mse, "also": [fnn.losses.softmax_cross_entropy]}
    back = fio.load(fio.save(tmp_path / "l", tree))
    assert back["loss"] is fnn.losses.mse and back["also"][0] is fnn.losses.softmax_cross_entropy


def test_register_refuses_the_names_of_fnn_objects():
    """A user cannot take over a name fnn's own objects use, in files old or new."""

    @attrs.frozen
    class Impostor:
        pass

    with pytest.raises(ValueError, match=r"'fnn\.layers\.dense\.Dense' already belongs to"):
        fio.register(Impostor, name="fnn.layers.dense.Dense")
    assert fio.register(fnn.Dense) is fnn.Dense  # fnn's own object under its own name: fine


def test_every_name_0_1_0_wrote_resolves_to_an_exported_object():
    """Each name in the 0.1.0 table maps to a class or function still exported by a public
    fnn module (if this fails, files written by 0.1.0 naming it no longer load: export
    the object again or update the table)."""
    names = registry.Names()
    missing = [old for old, new in V0_1_0_NAMES.items() if new not in names.public]
    assert not missing
    for old in V0_1_0_NAMES:
        obj = names.resolve(old)
        assert isinstance(obj, type) or callable(obj), old


def test_retired_names_are_not_in_the_0_1_0_table():
    """A name retired in 0.2 (0.1.0's optimizer configurations) is refused with its reason
    when a 0.1.0 file holds it (tests/test_golden.py loads one), never mapped to a new class."""
    assert RETIRED_IN_0_2 and not set(RETIRED_IN_0_2) & set(V0_1_0_NAMES)
    assert all("migration" in why for why in RETIRED_IN_0_2.values())


def test_a_0_1_0_name_still_loads_after_its_class_moves(tmp_path, monkeypatch):
    """A file naming fnn.layers.dense.Dense loads even when Dense has moved to another module
    (its module.qualname changed): the 0.1.0 table maps the old name to fnn.Dense."""
    net = fnn.init([fnn.Dense(2)], (3,), key=0)
    path = fio.save(tmp_path / "m", net)
    monkeypatch.setattr(fnn.Dense, "__module__", "fnn.layers.core")
    assert registry.Names().name_of(fnn.Dense) == "fnn.layers.core.Dense"
    back = fio.load(path)
    assert type(back.layers[0]) is fnn.Dense
    np.testing.assert_array_equal(back.layers[0].w, net.layers[0].w)


def test_names_are_rebuilt_per_call_from_sys_modules(monkeypatch):
    """A snapshot sees modules imported after fnn (no stale cache), and only fnn's."""
    before = registry.Names()
    assert "fnn.fakelate.f" not in before.builtin

    def f(key, shape, dtype):
        return np.zeros(shape, dtype)

    f.__module__, f.__qualname__ = "fnn.fakelate", "f"
    fake_module(monkeypatch, "fnn.fakelate", f=f, __all__=["f"])
    fake_module(monkeypatch, "notfnn", f=f, __all__=["f"])
    after = registry.Names()
    assert after.resolve("fnn.fakelate.f") is f
    assert after.resolve("notfnn.f") is None
