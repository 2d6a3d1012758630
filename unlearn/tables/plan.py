"""A table's jobs: every (block, row, seed) composed with the real configs, identified by its `config_id`.

Composing a job (no compute) gives its `config_id`, so the runner can skip jobs whose result already
exists (the same configuration and seed, from the same code) and the printer can find each cell's runs in
the results CSV whatever table they were first run for.
"""
from __future__ import annotations

from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, open_dict

from unlearn.identity import config_id
from unlearn.cli import override_key
from unlearn.paths import CONF
from unlearn.tables.preset import Block, Preset, Row, for_data
from unlearn.groups import build



@dataclass
class Job:
    block: Block
    row: Row
    seed: int
    overrides: list[str]
    config_id: str
    cfg: DictConfig
    threads: int | None = None  # torch threads the job's config or parallel launcher sets; None = torch's default


def _threads(cfg: DictConfig) -> int | None:
    """The torch threads a job will run with, as `unlearn.app.share_cores` sets them, where the config decides."""
    from unlearn.cpus import cores, launcher_threads
    if cfg.threads is not None:
        return int(cfg.threads)
    threads = launcher_threads(cfg.hydra.launcher, cores())
    return None if threads is None else int(threads)


def overrides(preset: Preset, block: Block, row: Row, extra: list[str]) -> list[str]:
    """Block overrides (`for_data`), then the row's method and overrides, then the user's, then the table's labels."""
    method = [] if any(override_key(o) == "ablation" for o in row.overrides) else [f"method={row.method}"]
    return [*for_data(block.overrides, extra), *method, *row.overrides, *extra, f"table={preset.table}",
            f"scale={preset.scale}"]


def without_download(block: Block, extra: list[str]) -> list[str]:
    """`extra` minus a `dataset.download=` override when the block's data set has no download (ImageFolder data
    such as ImageNet, 20 Newsgroups from its folder): one command line serves every block of a table."""
    others = [o for o in extra if override_key(o) != "dataset.download"]
    if len(others) == len(extra):
        return extra
    cfg = compose("config", overrides=[*for_data(block.overrides, extra), *others])
    return extra if "download" in cfg.dataset else others


def plan(preset: Preset, seeds: list[int], extra: list[str] = ()) -> list[Job]:
    """Every job of the table at its scale (blocks without a preset at this scale are left out)."""
    jobs = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for block in preset.blocks:
            if block.overrides is None:
                continue
            for row in preset.rows:
                if row.id in block.skip_rows:
                    continue
                ov = overrides(preset, block, row, without_download(block, list(extra)))
                base = compose("config", overrides=ov, return_hydra_config=True)  # composed once; the seed is a
                threads = _threads(base)  # plain value (seed=<n>); Hydra's part only says where the job runs
                with open_dict(base):
                    del base["hydra"]
                for seed in seeds:
                    cfg = base.copy()
                    cfg.seed = seed
                    jobs.append(Job(block, row, seed, ov, config_id(cfg), cfg, threads))
    return jobs


def launcher(extra: list[str]) -> DictConfig:
    """The `hydra.launcher` node the user's overrides choose (hydra/launcher=slurm, hydra.launcher.* values)."""
    mine = [o for o in extra if override_key(o).startswith(("hydra/launcher", "hydra.launcher"))]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=mine, return_hydra_config=True).hydra.launcher


def missing_data(cfg: DictConfig, download: bool = True) -> str | None:
    """None if the block's data set can be loaded, else the loader's message (where to put it, how to get it).

    Loading is cheap for the CPU-scale copies (decoded once, then cached) and lists files for the lazily
    decoded paper-scale ImageNet; nothing is trained. `download=False` (a dry run) never downloads: data absent
    here but asked for with dataset.download=true counts as present (the run fetches it), and so does a hub
    tokenizer that is not cached, unless the process is offline (HF_HUB_OFFLINE=1, as make sets it).
    """
    from contextlib import nullcontext

    from unlearn.data.store import MissingDataError
    from unlearn.text import hub_cache_only, offline
    node = cfg.dataset
    wants = bool(node.get("download", False))
    if wants and not download:
        node = node.copy()
        node.download = False
    try:
        with nullcontext([]) if download else hub_cache_only() as not_cached:
            build(node)
    except MissingDataError as e:
        return None if wants and not download else str(e)
    except ValueError as e:  # e.g. a tokenizer or model folder that is not available offline
        if not_cached and not offline():  # a hub tokenizer not cached here: the run fetches it
            return None
        return f"dataset {cfg.dataset.name}: {e}"
    return None


def root_of(cfg: DictConfig) -> str:
    return to_absolute_path(cfg.dataset.root) if "root" in cfg.dataset else "(embedded)"
