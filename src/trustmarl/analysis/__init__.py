"""Analysis of finished runs: reading run folders, the paper's figures, end-to-end reproductions.

* ``runs``      -- run folders (config.json, metrics.csv, trust_region.csv), grouping and labels.
* ``figures``   -- the figure functions, ``FIGURES`` (the ``trustmarl plot`` names), ``plot_learning_curve``.
* ``reproduce`` -- the experiments of Sun et al. (2022): their runs and figure (``trustmarl reproduce``).

Import the modules themselves (``from trustmarl.analysis import figures``): only ``figures`` needs matplotlib.
"""
