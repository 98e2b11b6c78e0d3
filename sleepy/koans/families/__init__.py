"""Generator templates, one module per koan family; `generator.patterns` imports them, which
registers them all."""
