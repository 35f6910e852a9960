"""The off-policy family's shared pieces: networks (:mod:`.networks`), pure math (:mod:`.functional`) and
the rule an algorithm injects into the trainer (:mod:`.rules`). The trainer is
:mod:`trustmarl.trainers.off_policy`; the algorithms are :mod:`trustmarl.algos.maddpg`, ``maac``, ``mamd``
and ``mamt``."""
