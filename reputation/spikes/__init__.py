"""DSN spikes: DSN series, their baseline and the detection of spikes, the likely cause, and the
evidence behind it."""
