"""ECE of Morningstar et al. B.1, accuracy, posterior predictive and the reliability plot."""

import numpy as np
import pytest

from tfvi import plots
from tfvi.evaluation import calibration as cal

PROBS = np.array([[0.2, 0.5, 0.3],   # p_true 0.2, wrong
                  [0.6, 0.3, 0.1],   # p_true 0.6, right
                  [0.1, 0.1, 0.8],   # p_true 0.8, right
                  [0.3, 0.4, 0.3]])  # p_true 0.4, right
LABELS = np.array([0, 0, 2, 1])


def test_ece_hand_computed():
    # Ranked by p_true: (0.2 wrong, 0.4 right) | (0.6 right, 0.8 right)
    # |0.3 - 0.5| = 0.2, |0.7 - 1.0| = 0.3 -> mean 0.25.
    assert cal.expected_calibration_error(PROBS, LABELS, bins=2) == pytest.approx(0.25)
    conf, acc, count = cal.calibration_bins(PROBS, LABELS, bins=2)
    np.testing.assert_allclose(conf, [0.3, 0.7])
    np.testing.assert_allclose(acc, [0.5, 1.0])
    np.testing.assert_array_equal(count, [2, 2])
    # Guo et al.'s ranking by max probability: (0.4 right, 0.5 wrong) | (0.6, 0.8 right)
    assert cal.expected_calibration_error(
        PROBS, LABELS, bins=2, rank_by="predicted") == pytest.approx(0.175)
    assert cal.accuracy(PROBS, LABELS) == pytest.approx(0.75)


def _b1_calibrated(n, rng, overconfident=False):
    """A predictor calibrated in B.1's sense: given p(y_true) = c, it is correct with
    probability c (c in (0.15, 0.5), so a wrong argmax is possible)."""
    c = rng.uniform(0.15, 0.5, n)
    correct = rng.random(n) < c
    labels = rng.integers(0, 10, n)
    probs = np.zeros((n, 10))
    for i in range(n):
        if correct[i] or overconfident:
            probs[i] = (1 - c[i]) / 9
        else:
            probs[i, (labels[i] + 1) % 10] = 1 - c[i]
        probs[i, labels[i]] = c[i]
    return probs, labels


def test_calibrated_predictors_have_ece_near_zero():
    rng = np.random.default_rng(0)
    probs, labels = _b1_calibrated(20_000, rng)
    assert cal.expected_calibration_error(probs, labels) < 0.02
    # The same confidences with every prediction right: badly calibrated.
    probs, labels = _b1_calibrated(20_000, rng, overconfident=True)
    assert cal.expected_calibration_error(probs, labels) > 0.5
    # Guo's variant: labels drawn from the predicted probabilities.
    probs = rng.dirichlet(np.full(5, 0.5), 20_000)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    assert cal.expected_calibration_error(probs, labels, rank_by="predicted") < 0.02


def test_validation_errors():
    with pytest.raises(ValueError, match="labels"):
        cal.expected_calibration_error(PROBS, np.array([0, 1, 5, 0]))
    with pytest.raises(ValueError, match="bins"):
        cal.expected_calibration_error(PROBS, LABELS, bins=5)
    with pytest.raises(ValueError, match="rank_by"):
        cal.expected_calibration_error(PROBS, LABELS, bins=2, rank_by="max")


def test_reliability_diagram_writes_png(tmp_path):
    path = tmp_path / "reliability.png"
    plots.plot_reliability_diagram(PROBS, LABELS, bins=2, path=str(path))
    assert path.stat().st_size > 1000
