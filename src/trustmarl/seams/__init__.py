"""The five seams: the only places where trustmarl's trust-region algorithms differ.

=================  ======================================  =========================================
seam               module                                  choices (registry)
=================  ======================================  =========================================
advantage          :mod:`.advantages`                      ``ADVANTAGES``: gae
probability ratio  :mod:`.ratios`                          ``RATIOS``: independent, joint (+ the
                                                           preceding agents' factor of sequential
                                                           orders, :func:`.ratios.preceding_factor`)
surrogate/clip     :mod:`.surrogates`                      ``OBJECTIVES`` keyed by ratio kind; bounds
                                                           symmetric / multiplicative
update order       :mod:`.update_orders`                   ``UPDATE_ORDERS``: simultaneous
critic input       :mod:`.critic_inputs`                   ``CRITIC_INPUTS``: local, global
=================  ======================================  =========================================

Every seam is a small pure function written for one sample (agents on the last axis, any leading batch
axes), with its formula and equation number in the docstring and hand-computed tests beside it
(``tests/seams/``). An algorithm (:mod:`trustmarl.algos`) is a declaration that picks one choice per seam
and adds its own math to a registry (JR-PPO's joint objective lives in :mod:`trustmarl.algos.jrppo`).
"""
