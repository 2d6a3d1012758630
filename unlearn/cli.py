"""The command line's checks, shared by the `unlearn` command (unlearn/__main__.py), the Hydra app and the tools:
a refused command line or config is one line on stderr, exit status 2, no folder left; launcher and sweeper
plugins named with the extra that installs them; a tool's own arguments split from the Hydra overrides after `--`.
Imports stay light, so `unlearn --help` and a missing plugin answer without loading torch.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from unlearn.paths import CONF

# Hydra plugins a launcher / sweeper preset needs: {config name prefix: (module, the extra that installs it)}
PLUGINS = {"joblib": ("hydra_plugins.hydra_joblib_launcher", "launchers"),
           "submitit": ("hydra_plugins.hydra_submitit_launcher", "launchers"),
           "optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
           "ray": ("hydra_plugins.hydra_ray_launcher", "ray")}
PLUGIN_GROUPS = ("hydra/launcher", "hydra/sweeper", "hparams_search")  # override groups that can need one


def refuse(message: str) -> None:
    """A command line refused before any work: one line on stderr, exit status 2 (as a rejected config)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def one_line_errors(command):
    """Run `command()`; a full disk, an unreadable cache file or a lock that cannot be taken (OSErrors whose
    message names the file and what to do) ends it with that one line and exit status 2, not a traceback."""
    try:
        return command()
    except OSError as e:
        from unlearn.cache import DiskFullError, UnreadableFileError
        from unlearn.locks import LockError
        if isinstance(e, (DiskFullError, LockError, UnreadableFileError)):
            refuse(" ".join(str(e.strerror if e.strerror else e).split()))
        raise


def split_argv(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """A tool's command line (`sys.argv[1:]` when None) as (its own arguments, the Hydra overrides for every job
    given after `--`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def override_key(override: str) -> str:
    """The config key or group an override names, read as text: `a.b=1`, `+a.b=1`, `++a.b=1` and `~a.b` all name
    `a.b`, `hydra/launcher=slurm` names `hydra/launcher` (Hydra's parser gives the same, at ~1 ms an override)."""
    return override.lstrip("+~").split("=", 1)[0]


def override_values(overrides: list[str], *keys: str) -> list[str]:
    """What the overrides of `keys` set, in command-line order (the last one is the one Hydra keeps); deletions
    without a value (`~key`) set nothing."""
    return [o.split("=", 1)[1] for o in overrides if "=" in o and override_key(o) in keys]


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else (an empty item, a word, a negative number) is a ValueError naming it."""
    items = text.split(",")
    if not all(i.strip().isdigit() for i in items):
        raise ValueError(f"{flag} {text!r} is invalid; allowed: comma-separated integers >= 0, e.g. 0,1,2")
    return [int(i) for i in items]


def check_results_arg(path: str, flag: str, must_exist: bool) -> None:
    """Exit 2 with one line when `path`, a results CSV to read, is a folder or (`must_exist`) not there."""
    given = Path(path)
    if given.is_dir() or (must_exist and not given.exists()):
        refuse(f"{flag} {path!r} is {'a folder' if given.is_dir() else 'not there'}; allowed: the results CSV of "
               f"the runs (a file{'' if must_exist else '; `run` creates it'})")


def group_options(group: str, conf: Path = CONF) -> list[str]:
    """The options of config group `group` (conf/<group>/**/*.yaml, as paths without .yaml); [] if none."""
    folder = conf / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def override_problem(argv: list[str], conf: Path = CONF) -> str | None:
    """One line saying what is wrong with the command line's overrides, or None, checked before Hydra composes
    anything (Hydra's own messages for these are tracebacks or its internals): Hydra syntax, a config group
    given anything but one of its options (`method=../model/cnn`, a list `dataset=[a,b]`; each value of a
    sweep is checked), and an `oc.` interpolation that cannot be resolved (`${oc.env:UNSET}`). Command lines with
    Hydra flags other than -m are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, ValueType
    from hydra.errors import OverrideParseException
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return None
    overrides, parser = [], OverridesParser.create()
    for arg in (a for a in argv if not a.startswith("-")):
        try:
            overrides += parser.parse_overrides([arg])
        except OverrideParseException as e:
            return (f"override {arg!r} is invalid ({str(e).splitlines()[0]}); allowed: Hydra's override grammar, "
                    f"key=value (-m key=a,b for a sweep)")
    for o in overrides:
        if o.is_delete():
            continue
        value = o.value()  # one value, a choice sweep's list; ranges, globs, intervals are Hydra's to expand
        values = value.list if isinstance(value, ChoiceSweep) else [value] if o.value_type == ValueType.ELEMENT else []
        group = o.key_or_group
        if not group.startswith("hydra") and (conf / group).is_dir():
            options = group_options(group, conf)
            for v in values:
                if isinstance(v, list):
                    return (f"{group}={o.input_line.partition('=')[2]} is invalid: a run takes one {group}; allowed: "
                            f"one of {options} (several, as a sweep: -m {group}={','.join(map(str, v))})")
                if v is not None and v not in options:
                    return f"{group}={v} is invalid; allowed: one of {options} (conf/{group}/*.yaml)"
        for v in values:
            if isinstance(v, str) and "${oc." in v:  # OmegaConf's own resolvers (others need the app or Hydra)
                try:
                    OmegaConf.to_container(OmegaConf.create({"value": v}), resolve=True)
                except InterpolationKeyError:  # names a config key: resolved by Hydra in the composed config
                    pass
                except OmegaConfBaseException as e:
                    cause = " ".join(str(e).splitlines()[0].split())
                    return (f"{group}={v} cannot be resolved ({cause}); allowed: a value, or an interpolation that "
                            f"resolves, e.g. ${{oc.env:NAME,default}}")
    return None


def plugins_needed(group: str, option: str, conf: Path = CONF) -> set[str]:
    """The PLUGINS keys that `group=option` needs: from the preset's defaults (the plugin's schema, or an
    override of hydra/launcher or hydra/sweeper) and its `_target_`; a plugin's own config name counts too."""
    needed = {p for p in PLUGINS if option == p or option.startswith(p + "_")}
    file = conf / group / f"{option}.yaml"
    if not file.is_file():
        return needed
    preset = yaml.safe_load(file.read_text()) or {}
    target = str(preset.get("_target_", ""))
    needed |= {p for p, (module, _) in PLUGINS.items() if target.startswith(module + ".")}
    for entry in preset.get("defaults") or []:
        if isinstance(entry, str) and not entry.startswith("_"):
            needed |= {p for p in PLUGINS if entry == p or entry.startswith(p + "_")}
        elif isinstance(entry, dict):
            for key, value in entry.items():
                sub = key.removeprefix("override").strip().lstrip("/")
                if sub in PLUGIN_GROUPS and isinstance(value, str):
                    needed |= plugins_needed(sub, value, conf)
    return needed


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even the hydra_plugins namespace
        return False


def check_plugins(argv: list[str]) -> None:
    """Exit with the extra to install when an override names a launcher or sweeper whose Hydra plugin is
    missing (Hydra itself would only say "Could not load 'hydra/launcher/joblib'")."""
    for arg in argv:
        key, eq, values = override_key(arg), "=" in arg, arg.partition("=")[2]
        if not eq or key not in PLUGIN_GROUPS:
            continue
        for option in values.split(","):
            for plugin in sorted(plugins_needed(key, option.strip())):
                module, extra = PLUGINS[plugin]
                if not installed(module):
                    where = " in an environment of its own (README, Scaling out)" if extra == "ray" else ""
                    refuse(f"{key}={option} needs Hydra's {plugin} plugin ({module}), which is not installed: "
                           f"pip install 'unlearn[{extra}]'{where}")


def _remove_rejected_run_dir() -> None:
    """Delete what Hydra wrote for a job that was rejected before doing anything: `.hydra/`, the job's log, then
    the run folder and its parents up to the launch folder while they are empty; in a sequential sweep rejected
    at its first job, also the sweep folder's `multirun.yaml`."""
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out, cwd = Path(hc.runtime.output_dir).resolve(), Path(hc.runtime.cwd).resolve()
    shutil.rmtree(out / ".hydra", ignore_errors=True)
    (out / f"{hc.job.name}.log").unlink(missing_ok=True)
    if hc.mode == RunMode.MULTIRUN and str(hc.launcher.get("_target_", "")).endswith("BasicLauncher"):
        sweep = Path(hc.sweep.dir).resolve()
        if sweep.is_dir() and {p.name for p in sweep.iterdir()} <= {"multirun.yaml", out.name}:  # no other job has written here
            (sweep / "multirun.yaml").unlink(missing_ok=True)
    for folder in (out, *out.parents):  # the run folder, then its parents inside the launch folder
        if folder != out and (folder == cwd or cwd not in folder.parents):
            break
        try:
            folder.rmdir()  # only if nothing else is in it
        except OSError:
            break


def _claimed(cfg) -> bool:
    """The job's run folder holds its `status` (unlearn.rundir.Claim): it had started work."""
    from unlearn.rundir import STATUS
    out = cfg.get("run_dir") or (HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None)
    return out is not None and (Path(out) / STATUS).exists()


def rejecting_bad_config(main):
    """Wrap a Hydra task function: ConfigError / MissingDataError end the job with their message and exit 2;
    so do a full disk, an unreadable cache file and a lock that cannot be taken (one line, exit 2; the run
    folder is kept once the job has claimed it, i.e. has started work)."""
    @functools.wraps(main)
    def wrapper(cfg):
        from unlearn.cache import DiskFullError, UnreadableFileError
        from unlearn.locks import LockError
        from unlearn.data.store import MissingDataError
        from unlearn.progress import Diverged
        from unlearn.checks import ConfigError
        try:
            return main(cfg)
        except (DiskFullError, LockError, UnreadableFileError) as e:  # the same for every job of a sweep: stop
            if not _claimed(cfg):
                _remove_rejected_run_dir()
            print(f"error: {' '.join(str(e.strerror or e).split())}", file=sys.stderr)
            sys.exit(2)
        except (ConfigError, MissingDataError) as e:
            _remove_rejected_run_dir()
            text = str(e.args[0] if e.args else e)
            if isinstance(e, ConfigError):  # one line; a missing-data message may list files line by line
                text = " ".join(text.split())
            print(f"error: {text}", file=sys.stderr)
            sys.exit(2)
        except Diverged as e:  # found during training: the run folder keeps its log and curves
            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # a failed job to the sweeper (Optuna records a failed trial and goes on), not an exit
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return wrapper
