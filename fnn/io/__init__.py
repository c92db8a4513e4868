"""Save and load fnn trees (networks, optimizer states, checkpoints) without pickle.

The file is an ordinary ``.npz`` archive (readable by
``np.load(path, allow_pickle=False)``) holding

- ``fnn-header``: a UTF-8 JSON document stored as a 1-d ``uint8`` array. It
  names the format (``"fnn"``), the format version, the fnn version that wrote
  it, and describes the whole tree: containers, attrs instances by class name
  with every field, ints, floats, strings, bools, ``None``, NumPy dtypes and
  scalars, and functions (such as the initialiser in ``Dense.w_init``) by name;
- ``arrays/<path>``: one ``.npy`` entry per array leaf, named by its tree path
  (``arrays/layers[0].w``; a bare array at the root is ``arrays/<root>``).

Loading never unpickles, never imports a module and never runs code from the
file: classes and functions are looked up by name among those exported in the
``__all__`` of fnn's public modules and those a user registered with
`register`. attrs instances are rebuilt through their constructors, so their
validators and converters run on loaded values; every loaded array is
read-only. The reader is bounded: it refuses decompression bombs, overlapping
or duplicate entries and compression methods fnn never writes, within a
memory budget the caller can raise (``load(path, max_bytes=...)``).

The package has one module per concern: `fnn.io.registry` (names),
`fnn.io.encode` (`save`), `fnn.io.archive` (the zip layer of the reader) and
`fnn.io.decode` (`load`).

Example:
    >>> import os, tempfile, fnn
    >>> net = fnn.init([fnn.Dense(2), fnn.Tanh()], (3,), key=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     written = save(os.path.join(d, "model"), {"net": net, "epoch": 3})
    ...     back = load(written)
    >>> written.name, back["epoch"]
    ('model.npz', 3)
    >>> fnn.tree.allclose(back["net"], net)
    True
"""

from fnn.io.decode import load
from fnn.io.encode import save
from fnn.io.registry import register
from fnn.io.spec import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "load", "register", "save"]
