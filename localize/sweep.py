"""W&B sweeps: ``python -m localize.sweep conf/sweep/ner_lora.yaml [--count N]`` (online only).

Creates the sweep on the W&B server and runs an agent here; each trial is an ordinary
``localize.train`` run. Offline, the same search space runs with Optuna instead:
``python -m localize.train -m hparams_search=ner_lora_optuna +locale=ja``.

A search space is defined once, in ``conf/search_space/<name>.yaml`` (typed parameters, no back-end
syntax); :func:`wandb_parameters` turns it into a W&B sweep's ``parameters`` (a sweep file names it
with ``search_space: <name>``) and :func:`optuna_params` into Hydra sweeper strings (the
``hparams_search`` files read them with ``${search_space:<name>,optuna}``).
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import subprocess
import sys
from typing import Any

import yaml

from localize.config import CONF_DIR

OPTUNA_HINT = "python -m localize.train -m hparams_search={name} +locale=ja"
SPACE_TYPES = ("float", "int", "choice")


def load_spec(path: str) -> dict[str, Any]:
    """A W&B sweep spec from YAML, its ``search_space: <name>`` expanded into W&B ``parameters``.

    ``${env}``-style macros are left for W&B to expand; the search space is read from
    ``search_space/<name>.yaml`` beside the sweep file's folder (``conf/``).
    """
    with open(path) as f:
        spec = yaml.safe_load(f)
    if "search_space" in spec:
        if "parameters" in spec:
            raise ValueError(f"{path} has both `search_space` and `parameters`: keep the one search space")
        conf_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        spec["parameters"] = wandb_parameters(load_search_space(spec.pop("search_space"), conf_dir))
    return spec


def load_search_space(name: str, conf_dir: str | os.PathLike = CONF_DIR) -> dict[str, dict[str, Any]]:
    """A search space from ``<conf_dir>/search_space/<name>.yaml``, checked.

    Args:
        name: the file's stem, e.g. ``ner_lora``.
        conf_dir: the config tree (default: this project's ``conf/``).

    Returns:
        ``{override key: {"type": "float"|"int", "low", "high", "log"} | {"type": "choice", "values"}}``
        in the file's order, with ``log`` filled in (False) and float bounds as floats.

    Raises:
        FileNotFoundError: no such search space (the message lists the ones there are).
        ValueError: a parameter of unknown type, missing or non-numeric bounds, or an empty choice.
    """
    folder = os.path.join(conf_dir, "search_space")
    path = os.path.join(folder, f"{name}.yaml")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml")) if os.path.isdir(folder) else []
        raise FileNotFoundError(f"no search space '{name}' ({path}); available: {', '.join(known) or 'none'}")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    return {key: _check_param(f"{name}: {key}", p) for key, p in raw.items()}


def _check_param(where: str, p: Any) -> dict[str, Any]:
    kind = p.get("type") if isinstance(p, dict) else None
    if kind not in SPACE_TYPES:
        raise ValueError(f"{where}: type must be one of {', '.join(SPACE_TYPES)}, got {kind!r}")
    if kind == "choice":
        if not isinstance(p.get("values"), list) or not p["values"]:
            raise ValueError(f"{where}: a choice needs a non-empty `values` list")
        return {"type": kind, "values": list(p["values"])}
    number = int if kind == "int" else (int, float)
    for bound in ("low", "high"):
        value = p.get(bound)
        if not isinstance(value, number) or isinstance(value, bool):
            raise ValueError(f"{where}: `{bound}` must be a{'n int' if kind == 'int' else ' number'}, got "
                             f"{value!r} (YAML reads 1e-4 as a string: write 1.0e-4)")
    if not p["low"] < p["high"]:
        raise ValueError(f"{where}: needs low < high, got {p['low']} and {p['high']}")
    log = bool(p.get("log", False))
    if log and (kind == "int" or p["low"] <= 0):
        raise ValueError(f"{where}: log applies to float parameters with low > 0 (W&B has no integer log scale)")
    cast = int if kind == "int" else float
    return {"type": kind, "low": cast(p["low"]), "high": cast(p["high"]), "log": log}


def wandb_parameters(space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A search space (:func:`load_search_space`) as a W&B sweep's ``parameters``."""
    out = {}
    for key, p in space.items():
        if p["type"] == "choice":
            out[key] = {"values": list(p["values"])}
        else:
            dist = "int_uniform" if p["type"] == "int" else "log_uniform_values" if p["log"] else "uniform"
            out[key] = {"distribution": dist, "min": p["low"], "max": p["high"]}
    return out


def optuna_params(space: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A search space (:func:`load_search_space`) as Hydra sweeper strings (``hydra.sweeper.params``)."""
    out = {}
    for key, p in space.items():
        if p["type"] == "choice":
            out[key] = f"choice({', '.join(_hydra_value(v) for v in p['values'])})"
        elif p["type"] == "int":
            out[key] = f"int(interval({p['low']}, {p['high']}))"
        else:
            interval = f"interval({p['low']!r}, {p['high']!r})"
            out[key] = f"tag(log, {interval})" if p["log"] else interval
    return out


def search_space_params(name: str, backend: str) -> dict[str, Any]:
    """The ``${search_space:<name>,<backend>}`` resolver: ``optuna`` (sweeper strings) or ``wandb``."""
    backends = {"optuna": optuna_params, "wandb": wandb_parameters}
    if backend not in backends:
        raise ValueError(f"unknown search-space backend '{backend}': use one of {', '.join(backends)}")
    return backends[backend](load_search_space(name))


def command_overrides(spec: dict[str, Any]) -> list[str]:
    """The fixed Hydra overrides in a spec's ``command`` (``+locale=ja``, ``adapter=lora``...)."""
    return [a for a in spec.get("command", []) if "=" in a and "${" not in a]


def _sample(p: dict[str, Any], rng: random.Random) -> Any:
    """One draw from a W&B parameter distribution (the W&B names and semantics)."""
    dist = p.get("distribution")
    if dist is None and "values" in p:
        dist = "categorical"
    if dist is None:  # W&B infers it from min/max
        dist = "int_uniform" if isinstance(p["min"], int) and isinstance(p["max"], int) else "uniform"
    lo, hi = p.get("min"), p.get("max")
    if dist == "constant":
        return p["value"]
    if dist == "categorical":
        return rng.choices(p["values"], weights=p.get("probabilities"))[0]
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist == "uniform":
        return rng.uniform(lo, hi)
    if dist == "q_uniform":
        return round(rng.uniform(lo, hi) / p.get("q", 1)) * p.get("q", 1)
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if dist == "q_log_uniform_values":
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))) / p.get("q", 1)) * p.get("q", 1)
    if dist == "log_uniform":  # W&B: min/max are exponents
        return math.exp(rng.uniform(lo, hi))
    if dist == "inv_log_uniform_values":
        return 1 / math.exp(rng.uniform(math.log(1 / hi), math.log(1 / lo)))
    if dist == "normal":
        return rng.gauss(p.get("mu", 0.0), p.get("sigma", 1.0))
    raise ValueError(f"unsupported W&B distribution '{dist}'")


def _hydra_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else str(v)


def expand_sweep(spec: dict[str, Any], n_samples: int = 3, seed: int = 0) -> list[list[str]]:
    """Concrete Hydra override lists that a sweep spec can produce.

    Every combination of the ``values`` lists (a grid), crossed with ``n_samples`` seeded draws of
    the distribution parameters (all of them drawn together per sample). Use it to check that
    every value composes (tests) or to run a sweep's space without W&B (``-m`` or a loop).

    Args:
        spec: a W&B sweep spec (``parameters`` with ``value``/``values``/``distribution``).
        n_samples: draws of the distribution parameters (ignored when there are none).
        seed: seed for the draws.

    Returns:
        Lists of ``key=value`` override strings, keys in the spec's order.
    """
    grid, dists = {}, {}
    for key, p in spec.get("parameters", {}).items():
        if "parameters" in p:
            raise ValueError(f"nested W&B parameters ('{key}') are not supported: use dotted keys")
        if "value" in p:
            grid[key] = [p["value"]]
        elif "values" in p and p.get("distribution", "categorical") == "categorical" and "probabilities" not in p:
            grid[key] = list(p["values"])
        else:
            dists[key] = p
    rng = random.Random(seed)
    draws = [{k: _sample(p, rng) for k, p in dists.items()} for _ in range(n_samples if dists else 1)]
    out = []
    for combo in itertools.product(*grid.values()):
        for draw in draws:
            values = {**dict(zip(grid, combo)), **draw}
            out.append([f"{k}={_hydra_value(values[k])}" for k in spec["parameters"]])
    return out


def offline_reason() -> str | None:
    """Why W&B can't run a sweep here (no key, offline mode, no server), or None when it can."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    try:
        import wandb

        if not wandb.Api(timeout=20).api_key:  # verifies the key with the server
            return "no W&B API key (wandb login / WANDB_API_KEY)"
    except Exception as e:  # no key, no network
        return f"{type(e).__name__}: {e}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localize.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("spec", help="W&B sweep YAML, e.g. conf/sweep/ner_lora.yaml")
    parser.add_argument("--count", type=int, default=None, help="runs for this agent (default: until the sweep ends)")
    parser.add_argument("--project", default=os.environ.get("WANDB_PROJECT", "localize"))
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"))
    parser.add_argument("--sweep-id", help="join an existing sweep instead of creating one")
    parser.add_argument("--print-spec", action="store_true",
                        help="print the W&B spec (search space expanded) for `wandb sweep`, and exit")
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)
    if args.print_spec:
        print(yaml.safe_dump(spec, sort_keys=False), end="")
        return 0
    reason = offline_reason()
    if reason:
        stem = os.path.splitext(os.path.basename(args.spec))[0]
        root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.spec))), "hparams_search")
        name = f"{stem}_optuna" if os.path.exists(os.path.join(root, f"{stem}_optuna.yaml")) else "<a file in conf/hparams_search>"
        print(f"[localize.sweep] W&B sweeps need the W&B server ({reason}). Offline, run the same search "
              f"space with Optuna: {OPTUNA_HINT.format(name=name)}", file=sys.stderr)
        return 2

    import wandb

    sweep_id = args.sweep_id or wandb.sweep(spec, entity=args.entity, project=args.project)
    path = "/".join(p for p in (args.entity, args.project, sweep_id) if p)
    print(f"[localize.sweep] sweep {path}; more agents: wandb agent {path}")
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ,
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # `${env} python` = this venv's python
           "WANDB_MODE": "online",  # the run's logger defaults to offline: a sweep run must report back
           "WANDB_PROJECT": args.project, **({"WANDB_ENTITY": args.entity} if args.entity else {})}
    cmd = [sys.executable, "-m", "wandb", "agent", "-p", args.project, *(["-e", args.entity] if args.entity else []),
           *(["--count", str(args.count)] if args.count else []), sweep_id]
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
