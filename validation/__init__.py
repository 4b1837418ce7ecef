"""Validation: the paper's numbers, reproduced the way they were produced.

The data path of ``reid-porting validate``, one module per step:

* :mod:`~porting.validation.datasets` -- Market-1501 (+500k), DukeMTMC-reID, CUHK03 and
  Oxford5k as the official scripts list them (MATLAB ``dir`` order, labels from names,
  ``cuhk-03.mat`` cells); :mod:`~porting.validation.mini` builds the bundled mini Market-1501;
* :mod:`~porting.validation.extract` -- the authors' feature extraction (their recipes, flip,
  oversampling), batched, cached, sharded under ``torchrun``;
  :mod:`~porting.validation.features` reads and checks feature files given instead;
* :mod:`~porting.validation.metrics` -- the official evaluation code as pure functions on
  arrays (Market single/multi query, CUHK03, Oxford5k; mAP, mINP, CMC);
  :mod:`~porting.validation.camera_pairs`, :mod:`~porting.validation.rerank` (k-reciprocal
  re-ranking), :mod:`~porting.validation.dxy_protocol` (D-X-Y's own evaluation);
* :mod:`~porting.validation.published` -- every published figure with the recipe, protocol
  and data that produced it;
* :mod:`~porting.validation.run` runs the asked protocols, :mod:`~porting.validation.report`
  compares with the published figures (only on the published test sets) and writes tables,
  JSON and plots, :mod:`~porting.validation.visrank` ranked-list pictures,
  :mod:`~porting.validation.cli` is the command.
"""
