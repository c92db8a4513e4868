"""Training: batches, the pure fit loop, evaluation, early stopping, callbacks, history, lr_find.

``fit`` is a function from one training state to the next; see
:mod:`fnn.train.loop` for the loop written out by hand.

Example:
    >>> import numpy as np, fnn
    >>> from fnn import train
    >>> [len(xb) for xb, _ in train.batches(np.zeros((5, 2)), np.zeros(5), 2, key=0)]
    [2, 2, 1]
"""

from fnn.train.batching import batches
from fnn.train.callbacks import STOP, EarlyStopping, EpochRecord, Signal
from fnn.train.evaluation import evaluate
from fnn.train.history import History
from fnn.train.loop import OptimizerLike, fit
from fnn.train.lr_find import LRFindResult, lr_find

__all__ = [
    "STOP",
    "EarlyStopping",
    "EpochRecord",
    "History",
    "LRFindResult",
    "OptimizerLike",
    "Signal",
    "batches",
    "evaluate",
    "fit",
    "lr_find",
]
