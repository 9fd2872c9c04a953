import numpy as np
import pytest
import torch

from tasks.runtime.loader import ImageBatches
from tasks.spec import Augmentation

pytestmark = pytest.mark.unit


CROP_AND_FLIP = Augmentation(random_crop_padding=4, horizontal_flip=True)


def make_batches(train=True, augmentation=CROP_AND_FLIP):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(100, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=100).astype(np.int64)
    return ImageBatches(images, labels, np.arange(10, 60), 16, augmentation, train=train, seed=1, rank=0), images


def test_batches_cover_the_shard_once_per_epoch_with_last_partial_batch():
    batches, _ = make_batches()
    sizes = [len(y) for _, y in batches.epoch(0)]
    assert sizes == [16, 16, 16, 2] and len(batches) == 4


def test_same_epoch_same_batches_other_epoch_other_order():
    batches, _ = make_batches()
    first = [x for x, _ in batches.epoch(3)]
    again = [x for x, _ in batches.epoch(3)]
    other = [x for x, _ in batches.epoch(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    batches, images = make_batches(augmentation=Augmentation(random_crop_padding=4))
    pixels = torch.from_numpy(images[10:60]).float() / 255
    padded = torch.nn.functional.pad(pixels, (4, 4, 4, 4))
    label_order = []
    for crops, _ in batches.epoch(0):
        label_order.append(crops)
    crops = torch.cat(label_order)
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # (n, C, 9, 9, 32, 32)
    for crop in crops[:5]:
        matches = (windows - crop[None, :, None, None]).abs().amax(dim=(1, 4, 5)) < 1e-6
        assert matches.any(), "every crop must equal some 32x32 window of a padded source image"


def test_validation_is_unaugmented_and_normalized():
    aug = Augmentation(random_crop_padding=4, horizontal_flip=True, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    batches, images = make_batches(train=False, augmentation=aug)
    x, _ = next(batches.epoch(0))
    expected = (torch.from_numpy(images[10:26]).float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected)
