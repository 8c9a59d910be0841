"""MTA adapters: the Postfix milter and policy server, the Postfix configuration generator, and
the spamd client the milter scores with."""
