"""Layers with hand-written forward and backward passes."""

from minidl.layers.activations import Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from minidl.layers.base import Layer
from minidl.layers.conv import Conv2D
from minidl.layers.dense import Dense, Flatten
from minidl.layers.merge import Add, Concat
from minidl.layers.normalization import BatchNorm2D, LocalResponseNorm
from minidl.layers.pooling import AvgPool2D, MaxPool2D

__all__ = ["Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "Dense", "Flatten", "ReLU",
           "LeakyReLU", "Tanh", "Sigmoid", "Dropout", "Add", "Concat", "LocalResponseNorm",
           "BatchNorm2D"]
