"""Stateless gradient transforms, composed with an optimizer by ``fnn.optim.chain``.

A transform maps the list of gradients of the trainable leaves (with the list of
those parameters) to new gradients, before the optimizer's own rule. Frozen and
state leaves are not in the lists, so they never count towards a global norm.

Example:
    >>> import numpy as np
    >>> clip = clip_by_global_norm(1.0)
    >>> clipped = clip([np.array([3.0]), np.array([4.0])], [np.zeros(1)] * 2)
    >>> [round(float(g[0]), 6) for g in clipped]
    [0.6, 0.8]
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from fnn.optim import _checks

__all__ = ["ClipByGlobalNorm", "L2Penalty", "clip_by_global_norm", "l2_penalty"]

Array = np.ndarray


def _max_norm(v: object) -> float:
    return _checks.number("fnn.optim.clip_by_global_norm", "max_norm", v, low=0.0, low_open=True)


def _coeff(v: object) -> float:
    return _checks.number("fnn.optim.l2_penalty", "coeff", v, low=0.0)


@attrs.frozen
class ClipByGlobalNorm:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    ``‖g‖ = sqrt(Σ_leaves Σ g²)``; if ``‖g‖ > max_norm`` every leaf becomes
    ``g · max_norm / ‖g‖``, otherwise the gradients pass unchanged (the same
    arrays). The direction is kept; only the step length is bounded (Pascanu et
    al., 2013).

    Args:
        max_norm: the largest allowed global norm, a finite number > 0.

    Raises:
        ValueError: ``max_norm`` is not a finite number > 0.

    Example:
        >>> import numpy as np
        >>> ClipByGlobalNorm(10.0)([np.array([3.0, 4.0])], [np.zeros(2)])[0]
        array([3., 4.])
    """

    max_norm: float = attrs.field(converter=_max_norm)

    def __call__(self, grads: list[Array], params: list[Array]) -> list[Array]:
        """The clipped gradients; ``params`` is not used."""
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if not total > self.max_norm:  # also passes NaN through unchanged
            return grads
        factor = self.max_norm / total
        return [g * g.dtype.type(factor) for g in grads]


@attrs.frozen
class L2Penalty:
    """Coupled L2 regularisation: ``g ← g + coeff · θ``.

    This is the gradient of ``L(θ) + (coeff / 2) · ‖θ‖²``, added before the
    optimizer's rule, so Adam rescales it (unlike AdamW's decoupled decay,
    ``fnn.optim.adamw``). With plain SGD the two coincide for ``coeff = λ``.

    Args:
        coeff: the penalty strength, a finite number >= 0.

    Raises:
        ValueError: ``coeff`` is negative or not finite.

    Example:
        >>> import numpy as np
        >>> L2Penalty(0.5)([np.array([1.0])], [np.array([2.0])])[0]
        array([2.])
    """

    coeff: float = attrs.field(converter=_coeff)

    def __call__(self, grads: list[Array], params: list[Array]) -> list[Array]:
        """``g + coeff · θ`` for each trainable leaf."""
        if self.coeff == 0.0:
            return grads
        return [g + p.dtype.type(self.coeff) * p for g, p in zip(grads, params, strict=True)]


def clip_by_global_norm(max_norm: float) -> ClipByGlobalNorm:
    """Clip the gradients' global norm to ``max_norm``; use with `fnn.optim.chain`.

    Example:
        >>> from fnn import optim
        >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.1))
        >>> opt.transforms[0].max_norm
        1.0
    """
    return ClipByGlobalNorm(max_norm)


def l2_penalty(coeff: float) -> L2Penalty:
    """Coupled L2 weight decay ``g ← g + coeff · θ``; use with `fnn.optim.chain`.

    To leave some leaves undecayed, freeze them or use ``fnn.optim.adamw``'s mask.

    Example:
        >>> from fnn import optim
        >>> opt = optim.chain(optim.l2_penalty(1e-4), optim.sgd(0.1, momentum=0.9))
        >>> opt.transforms[0].coeff
        0.0001
    """
    return L2Penalty(coeff)
