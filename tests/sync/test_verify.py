"""The weight-sync check's statistic and limit per dtype (rlcore/sync/verify.py)."""

import pytest

from rlcore.sync.verify import ProbeCheck


def test_float32_bounds_every_token():
    check = ProbeCheck("float32", atol=1e-3)
    assert check.statistic([0.0, -1.0, -2.0], [0.0, -1.0005, -2.002]) == pytest.approx(2e-3)
    assert check.failure([0.0, -1.0], [0.0, -1.0005]) is None
    msg = check.failure([0.0, -1.0, -2.0], [0.0, -1.0005, -2.002])
    assert msg is not None and "largest per-token" in msg and "sync.verify_atol=0.001" in msg
    # calibration does not loosen a float32 check
    assert check.calibrated([0.0], [0.5]).limit == 1e-3


def test_bf16_is_judged_on_the_mean_against_its_noise_floor():
    noisy = [0.0, -1.0, -2.0, -3.0]
    same_weights = [0.04, -1.04, -1.96, -3.4]  # rounding noise: mean 0.13, one token 0.4 off
    check = ProbeCheck("bfloat16", atol=1e-3, factor=4.0).calibrated(noisy, same_weights)
    assert check.baseline == pytest.approx(0.13)
    assert check.limit == pytest.approx(0.52)
    assert check.failure(noisy, [0.1, -1.3, -1.9, -2.7]) is None  # noise of the same size passes
    stale = [-1.5, -2.0, -3.5, -1.0]  # every token moved: a stale layer
    msg = check.failure(noisy, stale)
    assert msg is not None and "mean per-token" in msg and "bfloat16" in msg
    # a floor of zero (identical kernels) still leaves atol
    assert ProbeCheck("bfloat16", atol=1e-3).calibrated([0.0], [0.0]).limit == 1e-3


def test_the_mismatch_alarm_fires_above_its_early_level_only():
    from rlcore.sync.verify import mismatch_alarm

    early: list[float] = []
    for v in (1.1e-2, 0.9e-2, 1.0e-2):  # bf16 numerics: the first three steps set the level
        assert mismatch_alarm(v, early, factor=4.0) is None
    assert early == [1.1e-2, 0.9e-2, 1.0e-2]
    assert mismatch_alarm(3.9e-2, early, factor=4.0) is None  # the level drifts: no alarm
    msg = mismatch_alarm(4.5e-2, early, factor=4.0)  # a stale engine: every token off
    assert msg is not None and "4.50e-02" in msg and "early level 1.00e-02" in msg
    assert early == [1.1e-2, 0.9e-2, 1.0e-2]  # later steps do not move the level
    fp32: list[float] = [2e-7, 3e-7, 1e-7]
    assert mismatch_alarm(5e-5, fp32, factor=4.0) is None  # below the floor: still rounding
    assert mismatch_alarm(5e-3, fp32, factor=4.0) is not None
