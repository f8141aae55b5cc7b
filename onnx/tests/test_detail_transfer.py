"""Detail transfer (a screened, not shipped, blend variant): the model's
coarse part plus the input's fine part where no thick cloud is seen."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.reports.detail_transfer import gauss, transfer  # noqa: E402


def test_a_blur_keeps_constants_and_its_mass():
    x = torch.full((1, 3, 20, 24), 0.4)
    torch.testing.assert_close(gauss(x, 2.0), x)
    y = torch.rand(1, 3, 20, 24)
    assert float(gauss(y, 1.0).mean()) == pytest.approx(float(y.mean()), abs=0.02)


@pytest.mark.parametrize("det, ramp, want_input_detail", [
    (0.0, None, True),          # k = 1 everywhere
    (0.0, (0.3, 0.6), True),    # no cloud seen: the input's detail
    (1.0, (0.3, 0.6), False),   # thick cloud: the model's output as it is
])
def test_detail_comes_from_the_input_only_where_no_thick_cloud(det, ramp, want_input_detail):
    torch.manual_seed(0)
    x = (0.5 + 0.2 * torch.rand(1, 3, 32, 32)).clamp(0, 1)   # textured input
    out = torch.full((1, 3, 32, 32), 0.3)                  # a flat fill
    got = transfer(x, out, torch.full((1, 1, 32, 32), det), 2.0, ramp)
    if want_input_detail:
        # Fine detail is the input's, the coarse level the model's.
        torch.testing.assert_close(got - gauss(got, 2.0), x - gauss(x, 2.0), atol=0.03, rtol=0)
        assert float(gauss(got, 2.0).mean()) == pytest.approx(0.3, abs=0.02)
    else:
        torch.testing.assert_close(got, out)
