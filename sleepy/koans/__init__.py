"""The koan corpus: generating, mutating, importing, harvesting and validating koans. The koan
itself (`Koan`, its files and evalsets) is the contract in `sleepy.koan`, below the sandbox."""
