"""`python -m sleepy.day ...` is `sleepy-day ...`."""

from sleepy.day.run import main

main()
