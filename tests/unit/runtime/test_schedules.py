import pytest

from tasks.registry import resolve
from tasks.runtime.schedules import build_schedule

pytestmark = pytest.mark.unit


def lr_at(schedule, epoch, step=0):
    return schedule.lr_for_step(epoch, step)


def test_k1_plateau_fires_when_min_lr_allows_it():
    schedule = build_schedule(resolve("cifar10-resnet20", world_size=1, overrides={"schedule.min_lr": "0.005"}))
    for epoch, loss in enumerate([1.0, 1.0, 1.0]):  # best, bad 1, bad 2 > patience: halve
        assert lr_at(schedule, epoch) == pytest.approx(0.02)
        schedule.end_epoch(epoch, loss)
    assert lr_at(schedule, 3) == pytest.approx(0.01)


def test_k1_no_warmup_and_never_below_min_lr():
    schedule = build_schedule(resolve("cifar10-resnet20", world_size=1))
    assert lr_at(schedule, 0) == pytest.approx(0.02)
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0]):  # plateau: halving is clamped at min lr 0.02
        schedule.end_epoch(epoch, loss)
    assert lr_at(schedule, 4) == pytest.approx(0.02)


def test_k2_one_epoch_warmup_then_halved_on_plateau():
    schedule = build_schedule(resolve("cifar10-resnet20", world_size=2))
    assert lr_at(schedule, 0, 0) == pytest.approx(0.02)
    assert lr_at(schedule, 0, 5) == pytest.approx(0.02)  # constant within an epoch, as the reference
    schedule.end_epoch(0, 2.0)  # warm-up epoch: not counted for the plateau
    assert lr_at(schedule, 1) == pytest.approx(0.04)
    schedule.end_epoch(1, 0.9)  # best
    schedule.end_epoch(2, 0.895)  # improvement 0.005 < threshold 0.01: bad epoch 1 (patience 1)
    assert lr_at(schedule, 3) == pytest.approx(0.04)
    schedule.end_epoch(3, 0.899)  # bad epoch 2 > patience: halve
    assert lr_at(schedule, 4) == pytest.approx(0.02)


def test_k8_three_epoch_warmup_to_scaled_lr_then_halvings_down_to_min():
    schedule = build_schedule(resolve("cifar10-resnet20", world_size=8))
    assert lr_at(schedule, 0) == pytest.approx(0.02)
    assert lr_at(schedule, 1) == pytest.approx(0.02 + 0.14 / 3)
    assert lr_at(schedule, 2) == pytest.approx(0.02 + 0.28 / 3)
    assert lr_at(schedule, 3) == pytest.approx(0.16)
    # epoch 3 sets the best loss; every second non-improving epoch after that halves the rate
    expected = [0.16, 0.16, 0.16, 0.08, 0.08, 0.04, 0.04, 0.02, 0.02, 0.02]
    for offset, lr in enumerate(expected):
        epoch = 3 + offset
        assert lr_at(schedule, epoch) == pytest.approx(lr), f"epoch {epoch}"
        schedule.end_epoch(epoch, 1.0)


def test_state_round_trip_resumes_the_same_schedule():
    first = build_schedule(resolve("cifar10-resnet20", world_size=8))
    for epoch in range(6):
        first.lr_for_step(epoch, 0)
        first.end_epoch(epoch, 1.0)
    second = build_schedule(resolve("cifar10-resnet20", world_size=8))
    second.load_state_dict(first.state_dict())
    assert second.lr_for_step(6, 0) == first.lr_for_step(6, 0) == pytest.approx(0.08)


def test_ddp_variant_multistep_at_82_and_109():
    schedule = build_schedule(resolve("cifar10-resnet20", world_size=8, algorithm="ddp"))
    assert lr_at(schedule, 0) == pytest.approx(0.1)
    assert lr_at(schedule, 81) == pytest.approx(0.1)
    assert lr_at(schedule, 82) == pytest.approx(0.01)
    assert lr_at(schedule, 109) == pytest.approx(0.001)


@pytest.mark.parametrize("world_size, lr", [(1, 4.0), (2, 8.0), (16, 64.0), (32, 64.0)])
def test_epsilon_lr_is_4_times_min_16_k(world_size, lr):
    schedule = build_schedule(resolve("epsilon-logreg", world_size=world_size))
    assert lr_at(schedule, 0) == pytest.approx(lr)


def test_epsilon_plateau_cuts_by_three_quarters_after_one_bad_epoch_never_below_4():
    schedule = build_schedule(resolve("epsilon-logreg", world_size=2))
    schedule.end_epoch(0, 0.50)  # best
    assert lr_at(schedule, 1) == pytest.approx(8.0)
    schedule.end_epoch(1, 0.495)  # improvement 0.005 < 0.01: one bad epoch > patience 0
    assert lr_at(schedule, 2) == pytest.approx(6.0)
    for epoch in range(2, 6):
        schedule.end_epoch(epoch, 0.495)
    assert lr_at(schedule, 6) == pytest.approx(4.0)


def test_gnmt_schedule_warms_up_exponentially_then_halves_four_times():
    """MLBench 4a: 0.01 * lr at step 0 growing to lr at step 200; halved at 40 % of all steps, then every
    5 %, at most 4 times."""
    schedule = build_schedule(resolve("wmt16-gnmt", world_size=1), steps_per_epoch=1000)  # 8 epochs: 8000 steps
    assert lr_at(schedule, 0, 0) == pytest.approx(2e-5)
    assert lr_at(schedule, 0, 100) == pytest.approx(2e-3 * 0.01**0.5)
    assert lr_at(schedule, 0, 200) == pytest.approx(2e-3)
    assert lr_at(schedule, 3, 199) == pytest.approx(2e-3)  # step 3199, before 40 % of 8000
    assert lr_at(schedule, 3, 200) == pytest.approx(1e-3)  # step 3200
    assert lr_at(schedule, 3, 599) == pytest.approx(1e-3)
    assert lr_at(schedule, 3, 600) == pytest.approx(5e-4)  # + 5 % of 8000 = 400 steps
    assert lr_at(schedule, 7, 999) == pytest.approx(2e-3 / 16)  # never more than 4 halvings


def test_transformer_schedule_is_linear_then_inverse_square_root():
    schedule = build_schedule(resolve("wmt17-transformer", world_size=1), steps_per_epoch=500)
    assert lr_at(schedule, 0, 0) == pytest.approx(1.976e-3 / 1000)
    assert lr_at(schedule, 0, 499) == pytest.approx(1.976e-3 * 0.5)
    assert lr_at(schedule, 1, 499) == pytest.approx(1.976e-3)  # step 1000
    assert lr_at(schedule, 7, 499) == pytest.approx(1.976e-3 * (1000 / 4000) ** 0.5)


def test_step_schedules_need_the_steps_per_epoch():
    with pytest.raises(ValueError, match="needs the number of steps per epoch"):
        build_schedule(resolve("wmt17-transformer", world_size=1))
