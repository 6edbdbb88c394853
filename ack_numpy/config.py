"""Every setting of a training run, its default, its help text and its rules: the one place.

`TrainConfig` is what `train` takes; the command line builds `train`'s options and their
help from its fields (see cli.py), and `validate` is the only check of their values, used
for a new run, for `--resume --epochs` and for the settings a checkpoint holds.
A model's options are checked by the model's own rules (`models.check_model`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .functional.sizes import is_whole
from .models import IMAGE_SIZE, MODELS, check_model

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")
MAX_SHIFT = IMAGE_SIZE // 2  # a larger shift moves most of a digit out of the picture
MAX_EPOCHS = 100_000  # far beyond any run here (an epoch takes seconds); a typo such as 10**20 is refused


class SettingError(ValueError):
    """A TrainConfig setting of the wrong type or out of range; `name` is the setting."""

    def __init__(self, name: str, rule: str, value):
        super().__init__(f"{name} {rule}, got {value!r}")
        self.name, self.rule, self.value = name, rule, value


def setting(default, help: str, **cli):
    """A TrainConfig field with its command-line help; `cli` may add metavar, choices and
    default_text (what the help says when the default is None)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """Every setting of a training run, with its default: the one place they live.

    The default recipe is the one `reproduce` uses for every model (chosen on held-out
    training images): Adam, lr 3e-3 annealed to 0 with a cosine, batch 64, shifts of <= 2 px."""
    model: str = setting("lenet", "the network", choices=tuple(MODELS))
    epochs: int = setting(1, "passes over the training images")
    batch_size: int = setting(64, "images per minibatch (one optimiser step each)")
    lr: float = setting(3e-3, "learning rate at the first step")
    optimizer: str = setting("adam", "the optimiser", choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum (adam ignores it)")
    weight_decay: float = setting(0.0, "L2 weight decay")
    schedule: str = setting("cosine", "learning rate: cosine (to 0 over all epochs) or constant",
                            choices=SCHEDULES)
    max_shift: int = setting(2, f"augment with random shifts of up to N pixels, 0 to {MAX_SHIFT} (0 turns it off)",
                             metavar="N")
    seed: int = setting(0, "seed for the weights, the order of the images and the shifts")
    data_dir: str | None = setting(None, "folder with the four MNIST files", metavar="DIR",
                                   default_text="$ACK_MNIST_DIR, else data/mnist in a source checkout, else ~/.local/share/ack_numpy/mnist, else ./data/mnist")
    out: str | None = setting(None, "output folder of the run", metavar="DIR", default_text="runs/MODEL")
    limit_train: int | None = setting(None, "use only the first N training images", metavar="N",
                                      default_text="all 60,000")
    limit_test: int | None = setting(None, "use only the first N test images", metavar="N",
                                     default_text="all 10,000")
    holdout: int = setting(0, "evaluate on the last N training images instead of the test set "
                              "(for design choices)", metavar="N")
    model_options: dict = field(default_factory=dict)  # build_model's options (Python only)

    def __post_init__(self) -> None:
        # The default run folder is filled in here, once, so that everything after (the run,
        # the --visualize recorder, the resume hint) reads the same folder.
        if self.out is None:
            self.out = f"runs/{self.model}"

    def validate(self) -> None:
        """Check every setting's type and range; raise SettingError naming the first bad one.
        The command line, `train`, `resume` and a checkpoint's saved settings all come here."""
        rules = [
            ("model", isinstance(self.model, str) and self.model in MODELS, f"must be one of {', '.join(MODELS)}"),
            ("epochs", is_whole(self.epochs, 1) and self.epochs <= MAX_EPOCHS,
             f"must be a whole number >= 1 (at most {MAX_EPOCHS:,})"),
            ("batch_size", is_whole(self.batch_size, 1), "must be a whole number >= 1"),
            ("lr", is_number(self.lr) and self.lr > 0, "must be a positive number"),
            ("optimizer", isinstance(self.optimizer, str) and self.optimizer in OPTIMIZERS, "must be 'adam' or 'sgd'"),
            ("momentum", is_number(self.momentum) and 0 <= self.momentum < 1, "must be a number in [0, 1)"),
            ("weight_decay", is_number(self.weight_decay) and self.weight_decay >= 0, "must be a number >= 0"),
            ("schedule", isinstance(self.schedule, str) and self.schedule in SCHEDULES, "must be 'cosine' or 'constant'"),
            ("max_shift", is_whole(self.max_shift, 0) and self.max_shift <= MAX_SHIFT,
             f"must be a whole number from 0 to {MAX_SHIFT} (half the {IMAGE_SIZE}-pixel image)"),
            ("seed", is_whole(self.seed, 0), "must be a whole number >= 0"),
            ("data_dir", self.data_dir is None or (isinstance(self.data_dir, str) and self.data_dir != ""),
             "must be a folder name"),
            ("out", isinstance(self.out, str) and self.out != "", "must be a folder name"),
            ("limit_train", self.limit_train is None or is_whole(self.limit_train, 1), "must be a whole number >= 1"),
            ("limit_test", self.limit_test is None or is_whole(self.limit_test, 1), "must be a whole number >= 1"),
            ("holdout", is_whole(self.holdout, 0), "must be a whole number >= 0"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise SettingError(name, rule, getattr(self, name))
        try:
            check_model(self.model, self.model_options)
        except ValueError as err:
            raise SettingError("model_options", f"do not fit model {self.model!r}: {err}",
                               self.model_options) from None


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)



