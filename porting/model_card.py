"""The model card (``README.md`` of a :func:`porting.save_pretrained` folder), as the Hugging
Face Hub reads one: YAML front matter, then what the checkpoint is and how it was verified.

Every figure on the card is read from the checkpoint: its ``source`` (framework, file, SHA-256)
and its ``measurements`` (``compare``'s agreement per var, recorded by ``compare --record``;
``validate``'s published figures, recorded by ``validate --record``; see
:func:`porting.checkpoint.record_measurement`). A section with nothing recorded says so; no
number on the card is a constant of this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CITATION", "model_card"]

#: The paper whose models this library ports.
CITATION = """@article{zheng2017discriminatively,
  title     = {A Discriminatively Learned {CNN} Embedding for Person Re-identification},
  author    = {Zheng, Zhedong and Zheng, Liang and Yang, Yi},
  journal   = {ACM Transactions on Multimedia Computing, Communications, and Applications},
  volume    = {14},
  number    = {1},
  pages     = {13:1--13:20},
  year      = {2017},
  doi       = {10.1145/3159171},
  eprint    = {1611.05666},
  archivePrefix = {arXiv}
}"""


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _datasets(ckpt: Mapping[str, Any]) -> list[str]:
    found = []
    source = ckpt.get("source") or {}
    if isinstance(source.get("dataset"), str):
        found.append(source["dataset"])
    for key, value in sorted((ckpt.get("measurements") or {}).items()):
        if key.startswith("validate") and isinstance(value, Mapping) and \
                isinstance(value.get("dataset"), str):
            found.append(value["dataset"])
    return sorted({d.split("+")[0] for d in found})


def _front_matter(ckpt: Mapping[str, Any]) -> list[str]:
    lines = ["---", "library_name: reid-porting",
             "# license: set the licence of the weights you publish (the source model's terms "
             "apply)", "tags:", "- person-reid"]
    datasets = _datasets(ckpt)
    if datasets:
        lines += ["datasets:"] + [f"- {_yaml_str(d)}" for d in datasets]
    return lines + ["---", ""]


def _num(x: Any, fmt: str = ".3g") -> str:
    return "-" if not isinstance(x, (int, float)) or isinstance(x, bool) else format(x, fmt)


def _source(ckpt: Mapping[str, Any]) -> list[str]:
    source = ckpt.get("source") or {}
    converter = ckpt.get("converter") or {}
    lines = ["## Source", ""]
    if source.get("framework"):
        lines.append(f"Converted from **{source['framework']}** by "
                     f"`{converter.get('name', 'reid-porting')}` "
                     f"(converter version {converter.get('version', '?')}).")
        files = [(source.get("file", "?"), source.get("sha256"))]
        meta = ckpt.get("meta") or {}
        if meta.get("prototxt"):  # convert-caffe's second file
            files.append((Path(str(meta["prototxt"])).name, meta.get("prototxt_sha256")))
        lines += ["", "| file | SHA-256 |", "|---|---|"]
        lines += [f"| `{name}` | `{sha or 'not recorded'}` |" for name, sha in files]
    elif source.get("trained_with"):
        lines.append(f"Trained with `{source['trained_with']}`, recipe "
                     f"`{source.get('recipe', '?')}`"
                     + (f" on {source['dataset']}" if source.get("dataset") else "") + ".")
    else:
        lines.append("The checkpoint records no source.")
    return lines + [""]


def _compare(measurements: Mapping[str, Any]) -> list[str]:
    """``compare --record``'s measurement: the worst relative error per var, in graph order."""
    lines = ["## Agreement with the source framework (`compare`)", ""]
    rec = measurements.get("compare")
    if rec is None:
        return lines + ["No `compare` run is recorded in this checkpoint "
                        "(`reid-porting compare CHECKPOINT DUMP --record` records one).", ""]
    if not isinstance(rec, Mapping) or not isinstance(rec.get("worst_relative_error"), Mapping):
        keys = sorted(rec) if isinstance(rec, Mapping) else type(rec).__name__
        return lines + [f"A `compare` measurement is recorded in a form this card does not "
                        f"read (keys {keys}); it is not stated here.", ""]
    source = rec.get("source") or {}
    if source.get("opencv"):
        against = f"OpenCV {source['opencv']} running `{source.get('prototxt', '?')}`"
    else:
        against = f"`{source.get('reference', '?')}`" + (
            f" (SHA-256 `{source['sha256']}`)" if source.get("sha256") else "")
    passed = {True: "passed", False: "FAILED"}.get(rec.get("passed"), "result not recorded")
    lines += [f"Against {against}: {rec.get('compared', '?')} of {rec.get('outputs', '?')} "
              f"outputs compared, tolerance {_num(rec.get('rtol'), 'g')} relative, {passed}. "
              "Worst relative error `max|ours - ref| / max|ref|` per var, in graph order:", "",
              "| var | max rel |", "|---|---|"]
    for var, err in rec["worst_relative_error"].items():
        lines.append(f"| `{var}` | {_num(err) if not isinstance(err, str) else err} |")
    skipped = rec.get("not_compared") or {}
    if skipped:
        lines += ["", "Not compared: " + "; ".join(f"`{k}` ({v})" for k, v in skipped.items())
                  + "."]
    return lines + [""]


def _validate(measurements: Mapping[str, Any]) -> list[str]:
    lines = ["## Published figures (`validate`)", ""]
    runs = [(k, v) for k, v in sorted(measurements.items())
            if k.startswith("validate") and isinstance(v, Mapping)]
    if not runs:
        return lines + ["No `validate` run is recorded in this checkpoint "
                        "(`reid-porting validate ... --record` records one).", ""]
    for _key, run in runs:
        test_set = run.get("published_test_set") or {}
        head = (f"`validate` on {run.get('dataset', '?')}, recipe `{run.get('recipe')}`, "
                f"{', '.join(f'{v:,} {k}' for k, v in (run.get('counts') or {}).items())}")
        if not test_set.get("is"):
            lines += [head + ": not the published test set "
                      f"({test_set.get('reason') or 'reason not recorded'}), so no published "
                      "figure was compared.", ""]
            continue
        rows = [r for r in run.get("published", []) if isinstance(r, Mapping)
                and r.get("status") == "compared"]
        lines += [head + " (the published test set):", "",
                  "| figure | protocol | ours | published | delta | met | source |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            met = {True: "yes", False: "no"}.get(r.get("within"), "-")
            lines.append(f"| {r.get('metric')} | {r.get('protocol')} | {_num(r.get('ours'), '.2f')}"
                         f" | {_num(r.get('published'), '.2f')} | {_num(r.get('delta'), '+.2f')}"
                         f" | {met} | {r.get('source')} |")
        if not rows:
            lines.append("| (no published figure for this model and protocol) | | | | | | |")
        lines.append("")
    return lines


def _usage(config: Mapping[str, Any]) -> list[str]:
    cfg = config.get("pretrained_cfg") or {}
    lines = ["## Use", "", "```python", "import porting",
             'model = porting.from_pretrained("path/or/user/repo")   # an eval nn.Module',
             'extractor = porting.FeatureExtractor(model)   # its own preprocessing and recipe',
             "```", ""]
    size = cfg.get("input_size")
    if size:
        lines.append(f"Input {size[1]}x{size[2]} {cfg.get('colour_order', '?')}, resized with "
                     f"`{cfg.get('interpolation')}`, crop `{cfg.get('crop')}`; descriptor "
                     f"recipe `{cfg.get('recipe')}`, {config.get('num_features') or '?'} "
                     "features.")
        lines.append("")
    return lines


def model_card(ckpt: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The card's Markdown text for a checkpoint and its ``config.json`` dict."""
    measurements = ckpt.get("measurements") or {}
    arch = config.get("architecture", "?")
    meta = ckpt.get("meta") or {}
    lines = _front_matter(ckpt)
    lines += [f"# {arch} (reid-porting)", "",
              "A person re-identification model in reid-porting's form "
              "(`model.safetensors` with its preprocessing, "
              "descriptor recipe and provenance in its metadata; `config.json`). The "
              "architecture is that of Zheng, Zheng & Yang, *A Discriminatively Learned CNN "
              "Embedding for Person Re-identification* (ACM TOMM 2017)."
              + (f" Variant: {meta['model_variant']}." if meta.get("model_variant") else ""),
              ""]
    lines += _source(ckpt) + _compare(measurements) + _validate(measurements)
    lines += _usage(config)
    lines += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)
