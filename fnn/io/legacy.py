"""Names that files written by fnn 0.1.0 use, and where those objects are exported now.

A file names a class or function by the ``module.qualname`` where it was
defined when the file was written (``fnn.layers.dense.Dense``). When code
moves between modules that name changes, so `load` also accepts each name
below and looks the object up under the public name it maps to, which must
be exported in the ``__all__`` of an imported public fnn module (nothing is
imported because of a file). The table lists every class whose instances a
0.1.0 file can hold, and the initialisers (a layer's ``w_init``).
"""

from __future__ import annotations

__all__: list[str] = []

RETIRED_IN_0_2: dict[str, str] = {
    name: "a 0.1.0 optimizer configuration; fnn 0.2 builds optimizers from gradient "
    "transformations and cannot rebuild it. Optimizer *states* from 0.1.0 still load (and "
    "fnn.optim.migrate turns them into 0.2 states): re-create the optimizer in code, e.g. "
    "fnn.optim.adam(1e-3), and see docs/migration.md"
    for name in (
        "fnn.optim.base.Optimizer",
        "fnn.optim.rules.Adagrad",
        "fnn.optim.rules.Adam",
        "fnn.optim.rules.RMSprop",
        "fnn.optim.rules.Sgd",
        "fnn.optim.transforms.ClipByGlobalNorm",
        "fnn.optim.transforms.L2Penalty",
    )
}
"""Names a 0.1.0 file may hold that no longer stand for anything loadable, and why."""

V0_1_0_NAMES: dict[str, str] = {
    "fnn.datasets.Dataset": "fnn.datasets.Dataset",
    "fnn.layers.activations.ELU": "fnn.ELU",
    "fnn.layers.activations.GELU": "fnn.GELU",
    "fnn.layers.activations.Identity": "fnn.Identity",
    "fnn.layers.activations.LeakyReLU": "fnn.LeakyReLU",
    "fnn.layers.activations.ReLU": "fnn.ReLU",
    "fnn.layers.activations.Sigmoid": "fnn.Sigmoid",
    "fnn.layers.activations.Softmax": "fnn.Softmax",
    "fnn.layers.activations.Tanh": "fnn.Tanh",
    "fnn.layers.conv.Conv2D": "fnn.Conv2D",
    "fnn.layers.dense.Dense": "fnn.Dense",
    "fnn.layers.dropout.Dropout": "fnn.Dropout",
    "fnn.layers.initializers.glorot_normal": "fnn.initializers.glorot_normal",
    "fnn.layers.initializers.glorot_uniform": "fnn.initializers.glorot_uniform",
    "fnn.layers.initializers.he_normal": "fnn.initializers.he_normal",
    "fnn.layers.initializers.he_uniform": "fnn.initializers.he_uniform",
    "fnn.layers.initializers.lecun_normal": "fnn.initializers.lecun_normal",
    "fnn.layers.initializers.zeros": "fnn.initializers.zeros",
    "fnn.layers.norm.BatchNorm": "fnn.BatchNorm",
    "fnn.layers.norm.LayerNorm": "fnn.LayerNorm",
    "fnn.layers.pool.AvgPool2D": "fnn.AvgPool2D",
    "fnn.layers.pool.GlobalAvgPool2D": "fnn.GlobalAvgPool2D",
    "fnn.layers.pool.MaxPool2D": "fnn.MaxPool2D",
    "fnn.layers.reshape.Flatten": "fnn.Flatten",
    "fnn.layers.reshape.Reshape": "fnn.Reshape",
    "fnn.losses.Loss": "fnn.losses.Loss",
    "fnn.metrics.Metric": "fnn.metrics.Metric",
    "fnn.network.Network": "fnn.Network",
    "fnn.optim.base.OptState": "fnn.optim.OptState",
    "fnn.optim.schedules.Constant": "fnn.optim.schedules.Constant",
    "fnn.optim.schedules.CosineDecay": "fnn.optim.schedules.CosineDecay",
    "fnn.optim.schedules.ExponentialDecay": "fnn.optim.schedules.ExponentialDecay",
    "fnn.optim.schedules.StepDecay": "fnn.optim.schedules.StepDecay",
    "fnn.random.Key": "fnn.random.Key",
    "fnn.train.callbacks.EarlyStopping": "fnn.train.EarlyStopping",
    "fnn.train.history.History": "fnn.History",
}
