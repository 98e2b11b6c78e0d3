"""sleepy's Hydra config tree (`pkg://sleepy.conf`): one group per axis a user swaps, one file per
entrypoint, all starting from base.yaml.

Hydra imports this package when it first reads a config from it, and with it the `${sleepy.*:}`
resolvers (sleepy.config; `${sleepy.help_groups:}`, which lists an entrypoint's groups in its
--help, from sleepy.conf.usage) and the structured configs (`schema`), so a value of the wrong
type is refused when the config is composed.
"""

import sleepy.conf.schema  # noqa: F401  (stores the structured configs)
import sleepy.conf.usage  # noqa: F401  (the resolver of --help's config groups)
import sleepy.config  # noqa: F401  (registers the resolvers)
