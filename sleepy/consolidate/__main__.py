"""`python -m sleepy.consolidate ...` is `sleepy-consolidate ...`."""

from sleepy.consolidate.run import main

main()
