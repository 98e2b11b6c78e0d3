"""Episodes: the record of every attempt the agent makes, which sleep later learns from."""

from sleepy.episodes.metrics import metrics_of
from sleepy.episodes.store import Episode, EpisodeError, EpisodeStore, StoreFull

__all__ = ["Episode", "EpisodeError", "EpisodeStore", "StoreFull", "metrics_of"]
