"""What every path shares, with no Flask and no SQL: settings, the flag, time, durations, counters, logs."""
