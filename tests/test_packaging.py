"""The build configuration ships every package folder and the configs (conf/ at the root, unlearn.conf installed)."""
import tomllib

from tests.conftest import CONF, ROOT
from unlearn import paths


def test_every_package_folder_is_listed_for_the_wheel():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in (ROOT / "unlearn").rglob("*.py")}
    assert set(tool["packages"]) == folders | {"unlearn.conf"}
    assert tool["package-dir"] == {"unlearn.conf": "conf"}


def test_the_package_finds_the_config_folder_of_the_checkout_and_of_the_wheel(tmp_path):
    assert paths.CONF == CONF.resolve()
    (tmp_path / "unlearn" / "conf").mkdir(parents=True)  # the wheel's layout: the configs inside the package
    (tmp_path / "unlearn" / "conf" / "config.yaml").write_text("{}\n")
    assert paths.conf_dir(tmp_path / "unlearn") == tmp_path / "unlearn" / "conf"
    (tmp_path / "conf").mkdir()  # a checkout's layout: beside it
    (tmp_path / "conf" / "config.yaml").write_text("{}\n")
    (tmp_path / "unlearn" / "conf" / "config.yaml").unlink()
    assert paths.conf_dir(tmp_path / "unlearn") == tmp_path / "conf"
