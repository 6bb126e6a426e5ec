"""``python -m localize.continual sequence=<name> strategy=<name> [seed=..] [resume=<sequence dir>]``."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from localize.cli import cli
from localize.config import CONF_DIR
from localize.utils import quiet_libraries


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="continual")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    from localize.continual.sequence import Sequence

    state = Sequence(cfg).run()
    return (state.get("metrics") or {}).get("final_average")


def run() -> None:
    """The ``localize-continual`` console script."""
    cli(main)


if __name__ == "__main__":
    run()
