"""Fresh augmentations every epoch: a sampler that hands the Dataset global sample ids.

SAS draws depend only on ``(seed, sample id)``, so the same id always gives the same
augmentation.  For fresh draws each epoch the id must change with the epoch, and the epoch must
reach the code that calls SAS.  Setting ``dataset.epoch`` on the main process does not do that
with ``persistent_workers=True`` (each worker keeps the copy of the dataset it was started
with), and a per-worker counter would depend on the worker count and on scheduling.  The sampler
runs in the main process and its indices are sent to the workers with each batch, so the id is
the one place the epoch can travel reliably:

* :class:`EpochSampler` yields global ids ``epoch * n + i`` for every ``i`` in ``0..n-1`` (in
  order, or in a seeded per-epoch permutation);
* the Dataset reads item ``id % len(dataset)`` and passes ``sample_id=id`` to :class:`sas_fast.SAS`.

The output of a sample then depends only on ``(seed, epoch, index)``: not on ``num_workers``,
worker order, ``persistent_workers`` or batch composition.

This module imports neither torch nor any backend: a DataLoader accepts any iterable with
``__len__`` as ``sampler=``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np

from .philox import philox4x32_10, seed_to_key

__all__ = ["MAX_SAMPLE_ID", "EpochSampler"]

#: Sample ids are one 32-bit word of the Philox counter (SPEC §4): every id must be below this.
MAX_SAMPLE_ID = 1 << 32

# Counter word 3 of the sampler's own Philox stream: distinct from the noise (1 << 16) and
# parameter (2 << 16) tags, so a sampler and a SAS transform sharing a seed draw unrelated words.
_SHUFFLE_TAG = 3 << 16


class EpochSampler:
    """Global sample ids for epoch ``e`` of ``n`` samples: ``e * n + i`` for each ``i`` in ``0..n-1``.

    data_source: the dataset (anything with ``len()``) or its length ``n``.
    shuffle: visit the samples of each epoch in a permutation drawn from ``(seed, epoch)``
        (the same on every machine and NumPy version: Philox keys, argsort); else in order.
    seed: the 64-bit seed of the permutation (any run seed will do; it is not SAS's seed).
    epoch: the first epoch (e.g. the epoch a resumed run starts at).

    Call :meth:`set_epoch` before each epoch, as with torch's ``DistributedSampler``::

        for epoch in range(start, epochs):
            sampler.set_epoch(epoch)
            for batch in loader: ...

    The Dataset's ``__getitem__(sid)`` reads item ``sid % len(self)`` and passes ``sample_id=sid``
    to SAS.  All ids must stay below ``2**32``: :meth:`set_epoch` raises :class:`ValueError` for an
    epoch whose ids would not (a new run seed gives fresh draws after that).

    Why an explicit epoch rather than a sampler that counts its own passes: a count would tie the
    ids of "epoch 3" to how many times the sampler was iterated (a peeked batch, a sanity-check
    pass, a resumed run, how a framework drives the DataLoader), so epoch ``e`` could not be
    reproduced or replayed from its number.  With ``set_epoch`` the ids are a pure function of
    ``(n, seed, epoch)``, and tools that call ``set_epoch`` on samplers (as they do for
    ``DistributedSampler``) just work.  Forgetting it is the silent-repeat bug this class exists
    to prevent, so a second pass over the same epoch without a ``set_epoch`` call in between
    raises :class:`RuntimeError` when it starts; ``set_epoch(e)`` again repeats epoch ``e`` on
    purpose.  A pass "starts" when its first id is drawn, so an iterator that is created and
    never used does not count.
    """

    def __init__(self, data_source: Sized | int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0) -> None:
        if isinstance(data_source, (bool, np.bool_, str, bytes)):
            raise TypeError(f"data_source: expected a dataset (with len()) or its length, got {data_source!r}")
        if hasattr(data_source, "__len__"):
            n = len(data_source)
        else:
            try:
                n = operator.index(data_source)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"data_source: expected a dataset (with len()) or its length, got {type(data_source).__name__}"
                ) from None
        if not 0 <= n <= MAX_SAMPLE_ID:
            raise ValueError(f"data_source: expected a length in [0, 2**32], got {n}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle: expected True or False, got {shuffle!r}")
        self._key = seed_to_key(seed)  # validates the seed now
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self._started = False
        self.set_epoch(epoch)

    def __repr__(self) -> str:
        return f"EpochSampler({self.n}, shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass yield the ids of ``epoch`` (an integer >= 0 whose ids fit below 2**32)."""
        e = _epoch(epoch)
        if self.n and (e + 1) * self.n > MAX_SAMPLE_ID:
            last = MAX_SAMPLE_ID // self.n - 1
            raise ValueError(
                f"epoch: epoch {e} of {self.n} samples would use sample ids up to {(e + 1) * self.n - 1}, "
                f"but sample ids must stay below 2**32; epochs 0..{last} fit (start a run with a new seed "
                "for fresh draws beyond them)"
            )
        self.epoch = e
        self._started = False

    def ids(self, epoch: int | None = None) -> np.ndarray:
        """The ids of ``epoch`` (default: the current one) in the order a pass yields them, int64."""
        e = self.epoch if epoch is None else _epoch(epoch)
        if self.n and (e + 1) * self.n > MAX_SAMPLE_ID:
            raise ValueError(f"epoch: the ids of epoch {e} of {self.n} samples do not fit below 2**32")
        order = np.arange(self.n, dtype=np.int64)
        if self.shuffle and self.n > 1:
            # One 64-bit Philox key per sample from counter (i, epoch, 0, tag); a stable argsort of
            # the keys is a uniform permutation (ties have probability ~n^2 / 2^65 and still resolve
            # deterministically).  Epochs are < 2**32 here because their ids are.
            counter = np.zeros((self.n, 4), dtype=np.uint32)
            counter[:, 0] = order.astype(np.uint32)
            counter[:, 1] = e
            counter[:, 3] = _SHUFFLE_TAG
            words = philox4x32_10(counter, self._key)
            keys = (words[:, 0].astype(np.uint64) << np.uint64(32)) | words[:, 1].astype(np.uint64)
            order = np.argsort(keys, kind="stable").astype(np.int64)
        return order + np.int64(e) * np.int64(self.n)

    def __iter__(self) -> Iterator[int]:
        # A generator: the repeat check runs when the first id is drawn, not when iter() is called
        # (a DataLoader iterator may create a sampler iterator it never advances).
        if self._started:
            raise RuntimeError(
                f"EpochSampler: a second pass over epoch {self.epoch} started without set_epoch(); "
                "call sampler.set_epoch(epoch) before each epoch for fresh augmentations "
                f"(set_epoch({self.epoch}) again repeats this epoch on purpose)"
            )
        self._started = True
        yield from self.ids().tolist()  # Python ints: what a Dataset index usually is


def _epoch(epoch: Any) -> int:
    try:
        if isinstance(epoch, (bool, np.bool_)):
            raise TypeError
        e = operator.index(epoch)
    except TypeError:
        raise TypeError(f"epoch: expected an integer >= 0, got {epoch!r}") from None
    if e < 0:
        raise ValueError(f"epoch: expected an integer >= 0, got {e}")
    return e
