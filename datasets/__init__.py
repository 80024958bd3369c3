"""The repository's datasets: a registry by name (``load_dataset``), MNIST and CIFAR-10.

Needs numpy, tqdm, the standard library and minidl (for atomic writes and
argument checks); nothing from the repository's models.
"""

from .cifar10 import (CIFAR10, CIFAR10_MD5, CIFAR10_URL, CIFAR10Error, download_cifar10,
                      load_cifar10)
from .download import ArchiveError, DownloadError
from .idx import IDXError, read_idx, write_idx
from .mnist import (EXPECTED_COUNTS, MD5_CHECKSUMS, MIRRORS, MNIST_FILES, MNISTError,
                    default_data_root, download_mnist, load_mnist)
from .registry import DATASETS, EMBEDDED_ROOT, Dataset, DatasetError, data_root, load_dataset

__all__ = [
    "Dataset", "DatasetError", "DATASETS", "EMBEDDED_ROOT", "data_root", "load_dataset",
    "IDXError", "read_idx", "write_idx",
    "MNISTError", "MNIST_FILES", "MIRRORS", "MD5_CHECKSUMS", "EXPECTED_COUNTS",
    "default_data_root", "download_mnist", "load_mnist",
    "CIFAR10", "CIFAR10Error", "CIFAR10_URL", "CIFAR10_MD5", "download_cifar10", "load_cifar10",
    "DownloadError", "ArchiveError",
]
