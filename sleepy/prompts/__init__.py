"""What the model sees and how its reply becomes an edit: prompt templates and edit formats,
shared by the agent (day) and the training data it learns from (sleep)."""
