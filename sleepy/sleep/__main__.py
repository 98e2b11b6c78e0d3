"""`python -m sleepy.sleep ...` is `sleepy-sleep ...`."""

from sleepy.sleep.run import main

main()
