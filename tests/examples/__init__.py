"""Each example runs for real, with the command written at its top."""
