import pytest
import torch

from mma.routers import ModalityRouter


def test_router_is_tempered_softmax():
    r = ModalityRouter(8, num_experts=3, temperature=5.0)
    x = torch.randn(4, 8)
    ref = torch.softmax((x @ r.linear.weight.T + r.linear.bias) / 5.0, dim=-1)
    torch.testing.assert_close(r(x), ref)
    torch.testing.assert_close(r(x).sum(-1), torch.ones(4))


def test_router_rejects_bad_temperature():
    with pytest.raises(ValueError, match='temperature'):
        ModalityRouter(8, temperature=0)
