"""W&B sweeps: ``python -m localize.sweep conf/sweep/ner_lora.yaml [--count N]`` (online only).

Creates the sweep on the W&B server and runs an agent here; each trial is an ordinary
``localize.train`` run. Offline, the same search space runs with Optuna instead:
``python -m localize.train -m hparams_search=ner_lora_optuna +locale=ja``.
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

OPTUNA_HINT = "python -m localize.train -m hparams_search={name} +locale=ja"


def load_spec(path: str) -> dict[str, Any]:
    """A W&B sweep spec from YAML (``${env}``-style macros are left for W&B to expand)."""
    with open(path) as f:
        return yaml.safe_load(f)


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
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)
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
