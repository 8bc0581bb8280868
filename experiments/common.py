"""What the reproduction scripts share (their command-line checks)."""


def check_counts(parser, args, positive=(), non_negative=()):
    """Stops the script with `parser.error` naming the first count flag out of range
    (`positive`: >= 1, `non_negative`: >= 0; a flag left at None is not checked)."""
    for flags, low, kind in ((positive, 1, "a positive"), (non_negative, 0, "a non-negative")):
        for flag in flags:
            value = getattr(args, flag)
            if value is not None and value < low:
                parser.error(f"--{flag} must be {kind} integer; got {value}.")
