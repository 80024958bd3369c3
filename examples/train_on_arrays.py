"""Train a small convolutional network on your own NumPy arrays, then draw its report.

    python examples/train_on_arrays.py [RUN_DIR]      # then: python -m minidl.viz RUN_DIR
"""
import sys

import numpy as np

import minidl
from minidl.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minidl.optim import SGD
from minidl.rundir import InputSpec
from minidl.training import Trainer

# Your data: 600 grey 16x16 images; the class says where a faint vertical bar lies.
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 600)
x = rng.normal(0.0, 1.0, (600, 1, 16, 16)).astype(np.float32)
for image, label in zip(x, y):
    image[0, :, 5 * label:5 * label + 5] += 0.3

model = minidl.Sequential(Conv2D(1, 8, 3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(),
                          Dense(8 * 8 * 8, 3, rng=0))
trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=3, seed=0,
                  batch_size=32, run_dir=sys.argv[1] if len(sys.argv) > 1 else None,
                  input_spec=InputSpec((1, 16, 16), (0.0,), (1.0,), ("left", "middle", "right")))
history = trainer.fit((x[:500], y[:500]), val=(x[500:], y[500:]))
print(f"validation accuracy {history[-1]['val_acc']:.3f}")
