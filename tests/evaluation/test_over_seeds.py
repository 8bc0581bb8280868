"""The spread over seeds every table reports: the sample standard deviation."""

import numpy as np
import pytest

from tfvi.evaluation import mean_and_sd


def test_mean_and_sample_sd():
    # sum of squared deviations 2, over n - 1 = 2: sd 1 (np.std's population form: 0.816).
    assert mean_and_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_and_sd(np.array([[4.0]])) == (4.0, 0.0)
    mean, sd = mean_and_sd([0.1, 0.4, 0.2, 0.9])
    assert mean == pytest.approx(0.4) and sd == pytest.approx(np.sqrt(0.38 / 3))
    with pytest.raises(ValueError, match="empty"):
        mean_and_sd([])
