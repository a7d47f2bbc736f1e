import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning)

SMALL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-small"


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One thread, as a module's figures were measured, and the count restored after:
    the bit-pinned results of tests/test_pinned_behaviour.py depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_data():
    """The real 2k/1k CIFAR-10 sample from ../shared (never downloads)."""
    from recast.datasets import load_data

    if not SMALL.is_dir():
        pytest.skip(f"{SMALL} is missing")
    return load_data("cifar10", SMALL)


@pytest.fixture(scope="session")
def loaders(small_data):
    from recast.datasets import BatchLoader

    return (BatchLoader(small_data.train, small_data.mean, small_data.std, 64, seed=0),
            BatchLoader(small_data.test, small_data.mean, small_data.std, 250, train=False))


def trained(model: torch.nn.Module, loaders, epochs: float = 4) -> torch.nn.Module:
    from recast.progress import Progress
    from recast.teacher import train_teacher

    torch.manual_seed(0)
    train_teacher(model, loaders[0], loaders[1], epochs, 0.05, torch.device("cpu"),
                  Progress(quiet=True))
    return model.eval()


@pytest.fixture(scope="session")
def vgg_teacher(loaders):
    from recast.models import build_model

    return trained(build_model("vgg11", width=0.25), loaders)


@pytest.fixture(scope="session")
def resnet_teacher(loaders):
    from recast.models import build_model

    return trained(build_model("resnet20", width=0.5), loaders)


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with one error line (notes may come before it)."""
    from recast.cli import run

    assert run(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines()
             if not line.startswith("recast: note: ")]
    err = "\n".join(lines) + "\n"
    assert err.startswith("recast: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err
