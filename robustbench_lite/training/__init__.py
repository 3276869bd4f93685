"""The training room: how the zoo's models and ``robustbench-lite train RECIPE.yaml`` train.

One loop (:func:`~robustbench_lite.training.loop.fit`) runs every recipe. What differs between
recipes is asked of two registries (:mod:`~robustbench_lite.training.registry`):

* a **trainer** gives the loss of a batch: ``standard`` (cross-entropy), ``gaussian`` (Gaussian
  noise augmentation, the base classifier of randomized smoothing), ``pgd-at`` (Madry et al.
  2018) and ``trades`` (Zhang et al. 2019);
* a **schedule** sets the learning rate: ``fixed``, ``one-cycle`` (Smith & Topin 2019, the zoo's
  schedule) and ``accelat`` (Nikfam et al. 2022: the rate is lowered per epoch from the gradient
  of validation accuracy).

A recipe (:mod:`~robustbench_lite.training.recipe`) names both, the data, the optimiser and the
seed; :func:`~robustbench_lite.training.run.train_recipe` trains it and
:func:`~robustbench_lite.training.run.checkpoint_bytes` writes the state_dict with its
``rbl_meta`` (bounds, threat, data, recipe hash) so that every front door loads it.

Layer: content, between ``zoo`` (which trains with it) and ``datasets``. May import
``datasets``, ``worlds`` and ``core``; never ``zoo``, ``models``, the harness or the faces.
"""
