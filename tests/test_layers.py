"""The README's architecture holds in the code: every `from .x import` inside fer_hybrid runs downward
(core -> models -> inference -> evaluation -> apps), and no module imports another's _private name."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_hybrid"
LAYERS = {  # top-level module or folder of fer_hybrid -> layer (the README's Architecture section)
    **dict.fromkeys(["labels", "data", "images", "crops", "video", "errors", "safe_io", "_atomic", "npz_cache",
                     "artifacts", "keras_io", "cli_args"], 0),
    **dict.fromkeys(["cnn", "landmarks", "fusion", "fusion_parts", "hybrid", "onnx_model", "classical", "predictors"],
                   1),
    **dict.fromkeys(["inference"], 2),
    **dict.fromkeys(["evaluate", "reports", "compare", "verify", "ferplus", "peers", "eda", "evaluation"], 3),
    **dict.fromkeys(["realtime", "analyze", "analysis", "evaluate_folder", "overlay"], 4),
}
NAMES = ("core", "models", "inference", "evaluation", "apps")


def imports():
    """(importing module's top name, imported top name, imported names, file:line) of every relative import."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        me = parts[0] if parts[0] != "__init__" else None
        package = parts[:-1]  # the package this module sits in, relative to fer_hybrid
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [a.name for a in node.names]
                tops = [target[0]] if target else names
                for top in tops:
                    yield me, top, names, f"{rel}.py:{node.lineno}"


def test_every_module_is_in_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert tops <= set(LAYERS) | {"models"}, f"not in a layer (add to the README and LAYERS): {sorted(tops - set(LAYERS))}"


def test_imports_only_run_downward():
    upward = [f"{where}: {me} ({NAMES[LAYERS[me]]}) imports {top} ({NAMES[LAYERS[top]]})"
              for me, top, _, where in imports() if me in LAYERS and top in LAYERS and LAYERS[top] > LAYERS[me]]
    assert not upward, "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    private = [f"{where}: {names}" for me, top, names, where in imports()
               if any(n.startswith("_") and n != "_atomic" for n in names) and top != me]
    assert not private, "\n".join(private)


def test_the_scan_sees_the_imports_it_checks():
    found = {(me, top) for me, top, _, _ in imports()}
    assert ("realtime", "inference") in found and ("inference", "video") in found and ("hybrid", "artifacts") in found
    assert ("cnn", "predictors") not in found and ("landmarks", "predictors") not in found  # models never import the registry
