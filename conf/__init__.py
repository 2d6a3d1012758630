"""Hydra configs of unlearn at the repository root, installed as the package `unlearn.conf` (pyproject.toml's
package-dir) so an installed `unlearn` finds them; unlearn/paths.py is where the code looks for them."""
