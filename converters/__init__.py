"""Converters: a source framework's model file to a reid-porting checkpoint, and back again.

One package per source format, each reading **file -> checked spec -> graph -> checkpoint**:

* :mod:`~porting.converters.caffe` (``convert-caffe``): ``proto`` declares ``caffe.proto``,
  ``files``/``upgrade``/``reader`` parse prototxt + caffemodel (V1 upgraded, weights by
  name), ``check`` validates every layer as Caffe's ``LayerSetUp`` would, ``converter``
  builds the graph, ``arch`` maps it onto :mod:`porting.models`;
* :mod:`~porting.converters.matconvnet` (``convert-matconvnet``): ``layout``/``simplenn``/
  ``model`` normalise DagNN, SimpleNN and the importer's layouts into one DagNN-shaped
  model, ``check`` validates every layer as ``vl_nn*`` would, ``converter`` and ``arch`` as
  for Caffe;
* :mod:`~porting.converters.matfile`: MAT v5 (scipy, in an isolated child) and v7.3 (h5py)
  read into the shared values of ``matfile.values``.

In ``caffe/layers/`` and ``matconvnet/layers/`` each Caffe type / ``dagnn.*`` class is ONE
unit, registered by type name (``registry.UNITS``), holding its arity, its field check with
its shape rule and its graph builder; the semantics themselves live in :mod:`porting.layers`.

Shared beside them: :mod:`~porting.converters.common` (the registry class, the parameter
table, the checkpoint writer, the CLI error contract), :mod:`~porting.converters.limits`
(integer attributes, finite weights, the dry run's memory estimate),
:mod:`~porting.converters.arch` (``--arch auto``: a recognised graph kept as a canonical
model only if it computes the same) and :mod:`~porting.converters.compare` (a checkpoint run
on a dump of the source framework, reported var by var).
"""
