"""sleepy's Hydra config tree (`pkg://sleepy.conf`): one group per axis a user swaps, one file per
entrypoint. Hydra imports this package when it first reads a config from it, which registers the
`${sleepy.*:}` resolvers."""

import sleepy.config  # noqa: F401  (registers the resolvers)
