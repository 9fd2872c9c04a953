"""MLBench task 1a: ResNet-20 on CIFAR-10, as MLBench's reference *code* ran it (where its docs differ)."""

from tasks.spec import (
    AlgorithmSpec,
    Augmentation,
    DataSpec,
    ModelSpec,
    OptimizerSpec,
    Preset,
    ScheduleSpec,
    TargetSpec,
    TaskSpec,
    presets,
    quality_presets,
)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

TASK = TaskSpec(
    name="cifar10-resnet20",
    version="1.1",  # 1.1: the timed step ends after the training-batch metrics (README, "Task versions")
    mlbench_id="1a",
    description="Image classification: ResNet-20 v1 on CIFAR-10, synchronous data-parallel SGD",
    model=ModelSpec(name="resnet20-cifar"),
    data=DataSpec(
        dataset="cifar10",
        augmentation=Augmentation(random_crop_padding=4, horizontal_flip=True, mean=CIFAR10_MEAN, std=CIFAR10_STD),
    ),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients",
            optimizer=OptimizerSpec(lr=0.02, lr_scaling="linear", momentum=0.9, weight_decay=1e-4, nesterov=False),
            schedule=ScheduleSpec(kind="plateau-with-warmup", warmup_epochs="log2-world-size", factor=0.5,
                                  patience=1, threshold=0.01, min_lr=0.02),
            reference=True,
            description="MLBench reference: gradients packed into one flat all-reduce, averaged",
        ),
        AlgorithmSpec(
            name="ddp",
            aggregation="ddp",
            optimizer=OptimizerSpec(lr=0.1, lr_scaling="none", momentum=0.9, weight_decay=1e-4, nesterov=False),
            schedule=ScheduleSpec(kind="multistep", milestones=(82, 109), gamma=0.1),
            reference=False,
            description="PyTorch DistributedDataParallel (MLBench's alternative implementation)",
        ),
    ),
    batch_size=128,
    max_epochs=164,
    eval_every_epochs=1,
    target=TargetSpec(metric="top1", mode="max", value=0.80),
    seed=42,
    num_classes=10,
    presets=presets(
        *quality_presets(light_target="0.70"),
        # Real handwritten digits that ship with scikit-learn: runs offline in under a minute. Mean and
        # std measured on the digits training split after scaling to [0, 1] (tasks/data/digits.py).
        Preset("demo", "real data bundled with scikit-learn, reaches its target in under a minute on CPU", {
            "data.dataset": "digits",
            "data.augmentation.random_crop_padding": "2",
            "data.augmentation.horizontal_flip": "false",
            "data.augmentation.mean": "[0.3051, 0.3051, 0.3051]",
            "data.augmentation.std": "[0.3818, 0.3818, 0.3818]",
            "batch_size": "32",
            "max_epochs": "15",
            "target_value": "0.95",
        }),
        # A few hundred generated images in the real CIFAR-10 file format: seconds on CPU.
        Preset("smoke", "tiny generated data in the real file format, a few epochs, for tests", {
            "data.dataset": "synthetic-cifar10",
            "batch_size": "32",
            "max_epochs": "3",
            "target_value": "0.99",
        }),
    ),
)
