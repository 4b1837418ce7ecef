"""Converters: a source framework's model file to a reid-porting checkpoint, and back again.

Each converter is a reader, a check and a graph builder, joined by one registry:

* **files -> specs** (the input boundary: every error names the file and the layer, var or
  field in the source's words): :mod:`~porting.converters.matfile` reads MAT v7 / v7.3,
  :mod:`~porting.converters.matconvnet_model` normalises SimpleNN, DagNN and the importer's
  layouts into one DagNN-shaped model; :mod:`~porting.converters.caffe_proto` declares
  ``caffe.proto``, :mod:`~porting.converters.caffe_reader` parses prototxt + caffemodel (V1
  upgraded, weights by name);
* **checks**: :mod:`~porting.converters.matconvnet_spec` and
  :mod:`~porting.converters.caffe_spec` validate every layer as ``vl_nn*`` / Caffe's
  ``LayerSetUp`` would, :mod:`~porting.converters.limits` the shared rules (integer
  attributes, finite weights, the dry run's memory estimate);
* **graph**: :mod:`~porting.converters.matconvnet` and :mod:`~porting.converters.caffe` hold
  one small function per source layer type (``dagnn.Conv``, ``Convolution``...), registered
  by type name, that adds the layer to a :class:`porting.graph.GraphModule` description;
  :mod:`~porting.converters.common` the registry, the parameter table, the checkpoint writer
  and the CLI error contract;
* **canonical models**: :mod:`~porting.converters.arch` (``--arch auto``) with
  :mod:`~porting.converters.matconvnet_arch` / :mod:`~porting.converters.caffe_arch` map a
  recognised graph onto :mod:`porting.models`, kept only if it computes the same;
* **back to the source**: :mod:`~porting.converters.compare` runs a checkpoint on a dump of
  the source framework and reports, var by var, where it diverges.

The layers' semantics themselves live in :mod:`porting.layers`, not here.
"""
