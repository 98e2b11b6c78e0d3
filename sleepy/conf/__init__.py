"""sleepy's Hydra config tree (`pkg://sleepy.conf`): one group per axis a user swaps, one file per
entrypoint, all starting from base.yaml.

Hydra imports this package when it first reads a config from it, and with it the `${sleepy.*:}`
resolvers (sleepy.config) and the structured configs (`schema`), so a value of the wrong type is
refused when the config is composed.
"""

import sleepy.conf.schema  # noqa: F401  (stores the structured configs)
import sleepy.config  # noqa: F401  (registers the resolvers)
