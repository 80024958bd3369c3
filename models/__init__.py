"""LeNet model definitions: plain functions returning minidl containers."""

from models.lenet import lenet, lenet5, lenet_caffe, LENET5_C3_TABLE, MODELS

__all__ = ["lenet", "lenet5", "lenet_caffe", "LENET5_C3_TABLE", "MODELS"]
