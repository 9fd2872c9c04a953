import pytest
import torch

from tasks.errors import UserError
from tasks.models import build_model, parameter_count

pytestmark = pytest.mark.unit


def test_resnet20_has_about_0_27m_parameters_and_classifies_any_size():
    model = build_model("resnet20-cifar", num_classes=10)
    assert 0.26e6 < parameter_count(model) < 0.28e6
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_depth_must_be_6n_plus_2_and_names_are_checked():
    with pytest.raises(ValueError, match="6n\\+2"):
        build_model("resnet20-cifar", 10, {"depth": 21})
    with pytest.raises(UserError, match="valid models: resnet20-cifar"):
        build_model("vgg", 10)
