"""Tests of fnn.optim.schedules: values at chosen steps, boundaries, purity and errors."""

import itertools
import math

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn.optim import schedules as sch


def test_constant_is_the_same_at_every_step():
    """constant(lr)(t) == lr for any step."""
    s = sch.constant(0.3)
    assert [s(0), s(1), s(10**9)] == [0.3, 0.3, 0.3]


def test_step_decay_jumps_exactly_at_multiples_of_step_size():
    """step_decay keeps lr for step_size updates, then multiplies it by factor."""
    s = sch.step_decay(2.0, step_size=3, factor=0.5)
    assert [s(t) for t in range(8)] == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_exponential_decay_continuous_and_staircase():
    """lr·rate^(t/steps) continuously; with staircase the exponent is floor(t/steps)."""
    s = sch.exponential_decay(1.0, decay_rate=0.1, decay_steps=4)
    assert s(0) == 1.0
    assert s(2) == pytest.approx(0.1**0.5, rel=1e-15)
    assert s(8) == pytest.approx(0.01, rel=1e-15)
    stair = sch.exponential_decay(1.0, decay_rate=0.1, decay_steps=4, staircase=True)
    assert [stair(3), stair(4), stair(7), stair(8)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_cosine_decay_warmup_boundaries():
    """Linear warm-up reaches lr at step w-1; cosine starts at lr at step w, ends at final_lr."""
    lr, w, total, final = 0.8, 4, 12, 0.1
    s = sch.cosine_decay(lr, total_steps=total, warmup_steps=w, final_lr=final)
    assert [s(t) for t in range(w)] == pytest.approx([0.2, 0.4, 0.6, 0.8], rel=1e-15)
    assert s(w) == pytest.approx(lr, rel=1e-15)
    # halfway through the cosine part the rate is the mean of lr and final_lr
    assert s(w + (total - w) // 2) == pytest.approx((lr + final) / 2, rel=1e-12)
    expected = final + (lr - final) * 0.5 * (1 + math.cos(math.pi * (total - 1 - w) / (total - w)))
    assert s(total - 1) == pytest.approx(expected, rel=1e-12)
    assert s(total) == final
    assert s(total + 100) == final


def test_cosine_decay_without_warmup_starts_at_lr():
    """With warmup_steps=0 the first update uses lr and the rate decreases monotonically."""
    s = sch.cosine_decay(1.0, total_steps=10)
    values = [s(t) for t in range(12)]
    assert values[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[10] == 0.0


@given(
    st.floats(1e-6, 10.0),
    st.integers(1, 50),
    st.integers(0, 49),
    st.floats(0.0, 1.0),
    st.integers(0, 200),
)
def test_cosine_decay_stays_between_final_and_peak(lr, total, warmup, frac, step):
    """Every rate of a cosine schedule lies in (0, lr] during warm-up and in [final_lr, lr] after."""
    warmup = min(warmup, total - 1)
    final = lr * frac
    s = sch.cosine_decay(lr, total_steps=total, warmup_steps=warmup, final_lr=final)
    value = s(step)
    assert 0.0 <= value <= lr * (1 + 1e-12)
    if step < warmup:
        assert value > 0.0  # no wasted warm-up update
    else:
        assert value >= final * (1 - 1e-12)


def test_schedules_are_frozen_values():
    """A schedule cannot be changed after construction (it is part of an optimizer value)."""
    s = sch.step_decay(1.0, 2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.lr = 2.0  # type: ignore[misc]


def test_as_schedule_accepts_numbers_and_callables():
    """Floats and NumPy scalars become constant schedules; callables pass through unchanged."""
    assert sch.as_schedule("t", np.float32(0.5))(3) == 0.5
    f = sch.cosine_decay(1.0, 5)
    assert sch.as_schedule("t", f) is f


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: sch.constant(0.0), ValueError, r"fnn.optim.constant: lr must be a finite number in \(0, inf\), got 0.0"),
        (lambda: sch.constant(-1.0), ValueError, r"fnn.optim.constant: lr must be a finite number"),
        (lambda: sch.constant(float("nan")), ValueError, r"lr must be a finite number"),
        (lambda: sch.constant("0.1"), TypeError, r"fnn.optim.constant: lr must be a number"),
        (lambda: sch.step_decay(1.0, 0), ValueError, r"step_decay: step_size must be an int >= 1"),
        (lambda: sch.step_decay(1.0, 2.5), TypeError, r"step_decay: step_size must be an int"),
        (lambda: sch.step_decay(1.0, 2, factor=1.5), ValueError, r"step_decay: factor must be"),
        (lambda: sch.step_decay(1.0, 2, factor=0.0), ValueError, r"step_decay: factor must be"),
        (lambda: sch.exponential_decay(1.0, 0.0, 5), ValueError, r"decay_rate must be"),
        (lambda: sch.exponential_decay(1.0, 0.5, 0), ValueError, r"decay_steps must be an int >= 1"),
        (lambda: sch.cosine_decay(1.0, 0), ValueError, r"total_steps must be an int >= 1"),
        (lambda: sch.cosine_decay(1.0, 5, warmup_steps=5), ValueError, r"warmup_steps \(5\) must be smaller than total_steps"),
        (lambda: sch.cosine_decay(1.0, 5, warmup_steps=-1), ValueError, r"warmup_steps must be an int >= 0"),
        (lambda: sch.cosine_decay(1.0, 5, final_lr=2.0), ValueError, r"final_lr \(2.0\) must not exceed lr"),
        (lambda: sch.cosine_decay(1.0, 5, final_lr=-0.1), ValueError, r"final_lr must be"),
        (lambda: sch.constant(0.1)(-1), ValueError, r"constant: step must be an int >= 0"),
        (lambda: sch.cosine_decay(1.0, 5)(1.5), TypeError, r"cosine_decay: step must be an int"),
        (lambda: sch.as_schedule("fnn.optim.adam", "fast"), TypeError, r"fnn.optim.adam: lr must be a number or a schedule"),
        (lambda: sch.as_schedule("fnn.optim.adam", -3), ValueError, r"fnn.optim.adam: lr must be a finite number"),
    ],
)
def test_bad_schedule_arguments_raise(make, error, match):
    """Impossible schedule configurations and steps raise with the schedule's name."""
    with pytest.raises(error, match=match):
        make()
