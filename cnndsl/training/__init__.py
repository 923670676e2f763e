"""Training with the torch backend: data, the loop, transfer learning, and torch.distributed scale-out.

Everything here imports torch lazily or is imported only by `cnndsl train`, so
other commands never pay for it. Errors the user can fix are `TrainError`s:
the command prints their message and exits 2, without a traceback.
"""


class TrainError(Exception):
    """Bad data, weights or options for training; the message says what and where."""
