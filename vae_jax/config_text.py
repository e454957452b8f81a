"""Config fields named by a dotted path, and values written as text: what the sweep spec
(`vae_jax.train.sweep_spec`) and the study table (`vae_jax.evaluate.study`) share.

The spec names fields like `loss.beta` and gives their values as text (`loss.beta=1,4`); the
study reads them back from `config.json` and from the cells of `sweep_results.csv`.
"""

from typing import Any

_REQUIRED = object()


def lookup(config, key: str, default: Any = _REQUIRED) -> Any:
    """The field of config (a ConfigDict or a dict of dicts) at the dotted path key.

    Args:
      config: the config, or its JSON as nested dicts.
      key: a dotted path such as `loss.beta`.
      default: returned when the path does not exist; without it, KeyError is raised.
    """
    node = config
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError, IndexError):
            if default is _REQUIRED:
                raise KeyError(key) from None
            return default
    return node


def parse_value(text: str) -> Any:
    """A value written as text: `true`/`false` (any case) as bool, then int, then float; else
    the stripped text itself."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
