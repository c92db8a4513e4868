"""Datasets: IDX files, MNIST and Fashion-MNIST, generated toy problems, words, and helpers.

One module per kind of data:

- `fnn.datasets.idx`: `read_idx` / `write_idx`, the IDX format of the MNIST
  files, plain or gzip-compressed; `download`, verified by SHA-256.
- `fnn.datasets.images`: `mnist` / `fashion_mnist`, the four standard files
  found on disk or downloaded once, as a `Dataset` record of ``uint8`` images
  ``(n, 28, 28)`` and ``int64`` labels ``(n,)``; `images_to_float` turns
  images into what networks take.
- `fnn.datasets.toys`: `xor`, `linear_regression`, `two_spirals`, generated
  from an explicit key where random.
- `fnn.datasets.text`: `words`, the system word list in a deterministic
  train/validation/test split, and `CharVocab`, characters ↔ ids for
  character-level language models.
- `fnn.datasets.helpers`: `train_val_split`, `one_hot`, the two helpers every
  training script needs.

Every name is also available here, as ``fnn.datasets.<name>``. Every array
returned is read-only: data are values, like networks.

Example:
    >>> import numpy as np
    >>> x, y = xor()
    >>> x.shape, y.ravel().tolist()
    ((4, 2), [0.0, 1.0, 1.0, 0.0])
    >>> one_hot(np.array([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
"""

from fnn.datasets.helpers import one_hot, train_val_split
from fnn.datasets.idx import download, read_idx, write_idx
from fnn.datasets.images import Dataset, fashion_mnist, images_to_float, mnist
from fnn.datasets.text import CharVocab, Words, words
from fnn.datasets.toys import linear_regression, two_spirals, xor

__all__ = [
    "CharVocab",
    "Dataset",
    "Words",
    "download",
    "fashion_mnist",
    "images_to_float",
    "linear_regression",
    "mnist",
    "one_hot",
    "read_idx",
    "train_val_split",
    "two_spirals",
    "words",
    "write_idx",
    "xor",
]
