"""The repository's datasets: the IDX format and MNIST.

Needs only numpy, tqdm and the standard library (nothing from minidl).
"""

from .idx import IDXError, read_idx, write_idx
from .mnist import (EXPECTED_COUNTS, MD5_CHECKSUMS, MIRRORS, MNIST_FILES, MNISTError,
                    default_data_root, download_mnist, load_mnist)

__all__ = [
    "IDXError", "read_idx", "write_idx",
    "MNISTError", "MNIST_FILES", "MIRRORS", "MD5_CHECKSUMS", "EXPECTED_COUNTS",
    "default_data_root", "download_mnist", "load_mnist",
]
