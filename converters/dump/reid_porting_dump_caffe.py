"""Every blob of a Caffe net for one input, as an .npz that ``reid-porting compare`` reads.

Run it with the Python that has pycaffe (it needs only numpy and caffe, not reid-porting)::

    python reid_porting_dump_caffe.py deploy.prototxt weights.caffemodel -o outputs.npz

The net runs one layer at a time (``net.forward(start=L, end=L)``) and each layer's tops are
copied right after it ran, so a value that a later layer overwrites in place is kept too. Keys,
as the converted graph names the values:

* ``blob/<blob>``: the blob's final value; ``blob/<blob>@<layer>``: the value ``layer`` wrote
  into a blob that a later layer overwrites in place (``conv1@conv1`` before ``relu1``);
* ``input/<blob>`` for an input given with ``--input``; a seeded input is stored as its recipe
  (``__seed__/input/<blob>``, ``__shape__/...``, ``__sha256__/...``:
  ``RandomState(seed).uniform(-128, 128, shape)`` in float32, which compare regenerates and
  checks); other inputs (labels) are zeros, stored as ``input/<blob>``;
* ``__meta__``: JSON with the files' SHA-256, the Caffe version, seed and batch.

The tops of Caffe's automatic ``Split`` layers are copies of their bottom and are not stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prototxt")
    p.add_argument("caffemodel")
    p.add_argument("-o", "--output", required=True, help="the .npz to write")
    p.add_argument("--batch", type=int, default=2, help="batch of the seeded input (2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded input (0)")
    p.add_argument("--input", help="a .npy (N x C x H x W float32) for the image input")
    p.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST")
    args = p.parse_args(argv)

    import caffe
    import numpy as np

    caffe.set_mode_cpu()
    net = caffe.Net(args.prototxt, getattr(caffe, args.phase), weights=args.caffemodel)
    out: dict[str, np.ndarray] = {}
    given = None if args.input is None else np.load(args.input).astype(np.float32)
    for i, name in enumerate(net.inputs):
        shape = net.blobs[name].data.shape
        if len(shape) == 4 and shape[1] == 3:
            if given is not None:
                x = given
                out[f"input/{name}"] = x
            else:
                x_shape = (args.batch, *shape[1:])
                x = np.random.RandomState(args.seed + i).uniform(-128, 128, x_shape)
                x = x.astype(np.float32)
                key = f"input/{name}"
                out[f"__seed__/{key}"] = np.int64(args.seed + i)
                out[f"__shape__/{key}"] = np.asarray(x_shape, np.int64)
                out[f"__sha256__/{key}"] = np.asarray(hashlib.sha256(x.tobytes()).hexdigest())
        else:
            n = len(given) if given is not None else args.batch
            x = np.zeros((n, *shape[1:]), np.float32)
            out[f"input/{name}"] = x
        net.blobs[name].reshape(*x.shape)
        net.blobs[name].data[...] = x
    net.reshape()

    names = list(net._layer_names)
    types = [layer.type for layer in net.layers]
    writers = Counter(top for name in names for top in net.top_names[name])
    for name, kind in zip(names, types, strict=True):
        net.forward(start=name, end=name)
        for top in net.top_names[name]:
            writers[top] -= 1
            if kind in ("Input", "Split"):
                continue
            key = f"blob/{top}" if writers[top] == 0 else f"blob/{top}@{name}"
            out[key] = np.array(net.blobs[top].data, dtype=np.float32, copy=True)
    out["__meta__"] = np.asarray(json.dumps({
        "tool": "reid_porting_dump_caffe.py", "caffe": getattr(caffe, "__version__", "?"),
        "prototxt_sha256": _sha256(args.prototxt),
        "caffemodel_sha256": _sha256(args.caffemodel), "phase": args.phase,
        "seed": args.seed, "batch": args.batch if given is None else len(given)}))
    np.savez(args.output, **out)
    print(f"wrote {args.output}: {sum(k.startswith('blob/') for k in out)} blobs",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
