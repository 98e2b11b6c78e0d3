"""The recipe that trains sleepy-tiny from scratch (tokenizer, architecture, data, training,
evaluation); `sleepy-tiny` runs it and installs the result in sleepy/tiny/model."""
