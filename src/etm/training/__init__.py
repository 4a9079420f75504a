"""Training an :class:`etm.ETM`: the loop and what it uses.

* :mod:`etm.training.loop`: :class:`TrainingConfig` and :func:`train`;
* :mod:`etm.training.inference`: topic proportions, topic-word matrices, document completion;
* :mod:`etm.training.optimizers`: the authors' optimizers and a lazy Adam for row-sparse gradients;
* :mod:`etm.training.checkpoint`: resumable training state;
* :mod:`etm.training.distributed`: data-parallel runs under ``torchrun``.

``etm.training``'s public names are those of :mod:`etm.training.loop`
(its ``__all__``), as before the split into a package.
"""

from etm.training import loop as _loop
from etm.training.loop import *  # noqa: F403 - the loop module's __all__ is this package's public surface

__all__ = list(_loop.__all__)
