"""The laboratory around the engine: instruments that measure it, never part of it.

- `bench/`       speed and memory of the layers and of whole training steps
- `reproduce.py` the study of the paper's MNIST claims (many trainings, one report)

The engine (autograd, functional, nn, optim, models, data, train, viz) never imports
anything from here; `tests/test_layout.py` checks that rule by reading the imports.
"""
